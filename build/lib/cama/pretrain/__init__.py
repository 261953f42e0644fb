"""pretrain: continued pretraining of a LLaMA on the packed blend, a thin user of ``cama.train``.

Only what is specific to pretraining lives here:

- ``config``  ``ModelInit``: the demo's model shape (``model.init``) and its checks
- ``model``   a seeded tiny LLaMA for the demo (untied embeddings, safetensors + tokenizer)
- ``train``   ``pretrain(...)``: the blend (``cama.pack.dataset.BlendDataset``) checked against
              the model and its tokenizer, then ``cama.train.run.fit``; the stats and loss curve
- ``cli``     ``cama pretrain``: the launcher (``cama.train.launch``) for ``cama.pretrain.train``

Bits per byte of the result is the evaluation stage's (``cama.evaluate.bpb``).
"""
