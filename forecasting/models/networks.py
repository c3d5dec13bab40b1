"""Keras helpers the networks share."""

from __future__ import annotations

import keras


def seed_mean(members: list[keras.Model], name: str) -> keras.Model:
    """One model whose output is the mean of ``members``' (same inputs, trained apart with one seed each): one file
    to save, one call to predict.  A single member is returned as it is."""
    if len(members) == 1:
        return members[0]
    inputs = [keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in members[0].inputs]
    args = inputs if len(inputs) > 1 else inputs[0]
    out = keras.layers.Average(name="seed_mean")([_uncompiled(m)(args) for m in members])
    return keras.Model(args, out, name=name)


def seed_members(network: keras.Model) -> list[keras.Model]:
    """The members of a :func:`seed_mean` model (a plain network is its own only member)."""
    return [layer for layer in network.layers if isinstance(layer, keras.Model)] or [network]


def _uncompiled(model: keras.Model) -> keras.Model:
    """A copy of ``model`` without its training configuration: a member's custom loss would otherwise be saved with
    the seed mean and be needed to load it."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy
