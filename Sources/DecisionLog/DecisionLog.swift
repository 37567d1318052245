// The SQLite audit log.
