"""evaluate: metrics of the trained models.

- ``bpb``  bits per byte on the held-out documents, per language -> eval/bpb.json
"""
