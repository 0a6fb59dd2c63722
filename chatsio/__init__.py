"""chatsio: a real-time chat server speaking Socket.IO."""

__version__ = "0.1.0"
