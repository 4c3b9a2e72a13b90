"""Readers of model files written by code we do not own (NVlabs StyleGAN2-ADA / StyleGAN3 `.pkl`, rosinality
StyleGAN2 `.pt`). They read, never run: a file becomes plain records of tensors and constructor arguments, and
everything after that point sees only our own checkpoint contract (tgan_deploy/checkpoint.py)."""
