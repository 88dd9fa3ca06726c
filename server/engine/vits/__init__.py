"""Torch modules of VITS inference as Piper voices use it.

Every module is built from an :class:`~syrinx.server.engine.vits.architecture.Architecture`
(layer shapes and convolution settings read from a voice file), never from
hard-coded hyper-parameters, so any Piper voice builds the network it was
trained with.
"""
