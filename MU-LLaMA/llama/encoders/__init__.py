"""The encoders whose features the bridges read: MERT (music), ViT (images), ViViT (video)."""
