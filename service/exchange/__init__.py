"""Exchange with hospital EHRs: connections, the outbox and its worker, referral polling."""
