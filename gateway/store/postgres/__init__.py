"""The PostgreSQL store: several gateway replicas on one database, one audit chain."""
