from chatsio.protocol import CHAT, CONTROL


async def test_start_invite_and_message(chatsio):
    alice_token, bob_token = await chatsio.user("alice"), await chatsio.user("bob")
    alice, welcome = await chatsio.member(alice_token)
    assert welcome["user"] == "alice" and welcome["chats"] == []
    bob, _ = await chatsio.member(bob_token)
    ack = await alice.call(CONTROL, "start", {"members": ["bob"], "title": "hi"})
    assert ack["ok"], ack
    invite = await bob.next(CONTROL, "invite")
    assert invite["by"] == "alice" and invite["chat"] == ack["chat"]
    chat_id = ack["chat"]["id"]
    for peer in (alice, bob):
        joined = await peer.call(CHAT, "join", {"id": chat_id})
        assert joined["ok"] and joined["messages"] == [], joined
    sent = await alice.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": "yo"}
    )
    assert sent["ok"], sent
    got = await bob.next(CHAT, "notify")
    assert got == sent["message"]
