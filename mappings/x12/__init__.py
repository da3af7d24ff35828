"""ASC X12 text for billing (pure, no I/O): the 837P professional claim (005010X222A1) PeerLink writes,
and the 999 acknowledgement and 835 remittance it reads back (segments split by pyx12's reader)."""
