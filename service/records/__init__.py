"""Use cases on the peer program's records: domain rules, references and persistence together."""
