"""Engine.IO v4 and Socket.IO v5 conformance, chatsio beside stock python-socketio."""
