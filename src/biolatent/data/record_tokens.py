"""The records vocabulary's fixed tokens and age range, shared by the records loader, views, encoder and method.

A module without imports of its own, so that networks and methods can use these ids without importing the
loader (and, through it, the config).
"""

PAD_ID, UNK_ID, MASK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]")
MAX_AGE = 119  # ages are whole years clipped to 0..MAX_AGE
