// The Node socket.io 4.x peer of chatsio for bench/perf: the same three events
// (`/control` start, `/chat` join and notify) with the same ack and message
// shapes, no storage and no authentication (any token is accepted).
//
//   node peer-server.js --port 8081 [--host 127.0.0.1]
"use strict";

const http = require("node:http");
const { randomUUID } = require("node:crypto");
const { Server } = require("socket.io");

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

function userOf(socket) {
  const auth = socket.handshake.auth || {};
  return String(auth.token || "anonymous").slice(0, 32);
}

function chatShape(id, user, members) {
  return {
    id,
    title: null,
    members: [user, ...members],
    created_by: user,
    created_at: new Date().toISOString(),
    active: true,
  };
}

function serveControl(io) {
  io.of("/control").on("connection", (socket) => {
    const user = userOf(socket);
    socket.emit("welcome", { user, chats: [], server_time: new Date().toISOString() });
    socket.on("start", (payload, ack) => {
      const members = (payload && payload.members) || [];
      if (typeof ack === "function") ack({ ok: true, chat: chatShape(randomUUID(), user, members) });
    });
  });
}

function serveChat(io) {
  const seqs = new Map(); // chat id -> last seq
  io.of("/chat").on("connection", (socket) => {
    const user = userOf(socket);
    socket.on("join", (payload, ack) => {
      const id = String(payload && payload.id);
      socket.join(id);
      if (typeof ack === "function") ack({ ok: true, chat: chatShape(id, user, []), messages: [] });
    });
    socket.on("notify", (payload, ack) => {
      const id = String(payload && payload.id);
      const seq = (seqs.get(id) || 0) + 1;
      seqs.set(id, seq);
      const message = {
        id,
        seq,
        kind: "message",
        text: String(payload && payload.text),
        sender: user,
        ts: new Date().toISOString(),
        client_id: (payload && payload.client_id) || null,
        file: null,
      };
      socket.to(id).emit("notify", message);
      if (typeof ack === "function") ack({ ok: true, message });
    });
  });
}

function main() {
  const port = Number(option("port", "8081"));
  const host = option("host", "127.0.0.1");
  const httpServer = http.createServer((req, res) => {
    if (req.url === "/api/health") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"status":"ok"}');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer);
  serveControl(io);
  serveChat(io);
  httpServer.listen(port, host);
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
      io.close();
      process.exit(0);
    });
  }
}

main();
