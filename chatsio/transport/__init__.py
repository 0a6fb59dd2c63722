"""The transport: chatsio's replacements of python-socketio/engineio parts."""
