"""The event-sourcing core: events, wire messages, the fold, the SQLite log and its
archive, the reactor loop, sockets, Appender, Follower and the service skeleton."""
