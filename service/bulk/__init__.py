"""Bulk export (FHIR Bulk Data Access 2.0 ``$export``): kick-off parameters (:mod:`.params`), durable
jobs (:mod:`.jobs`), the export itself (:mod:`.export`: stored canonical bytes to NDJSON, inside the
client's data boundary), the files' storage (:mod:`.storage`), the loop that runs jobs (:mod:`.runner`)
and the Group of each partner organisation (:mod:`.groups`)."""
