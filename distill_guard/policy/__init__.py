"""The reviewed file formats: GuardPolicy, ProbeSuite and DatasetProvenance, with located YAML loading.

The lowest layer above `errors`: nothing here imports probes, drift, provenance or the guard.
"""
