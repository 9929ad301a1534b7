import torch

from biolatent.data.samples import DataInfo
from biolatent.data.sequence import PAD_BASE
from biolatent.models.sequence import BertSequenceEncoder

SMALL = {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32}


def test_bert_shapes_and_positions() -> None:
    torch.manual_seed(0)
    enc = BertSequenceEncoder.from_data(DataInfo("dna", max_length=40, kmer=4), **SMALL)
    assert enc.tokenizer.k == 4 and enc.out_dim == 16
    assert enc.bert.config.max_position_embeddings >= 40 - 4 + 1
    assert enc.bert.config.vocab_size == 5 + 4**4
    x = torch.randint(0, 4, (3, 40))
    assert enc(x).shape == (3, 16)
    tokens, mask = enc.tokenize(x)
    assert enc.forward_tokens(tokens, mask).shape == (3, 37, 16)


def test_mean_pooling_ignores_padding() -> None:
    torch.manual_seed(0)
    enc = BertSequenceEncoder(3, 40, **SMALL).eval()
    x = torch.randint(0, 4, (2, 40))
    x[:, 25:] = PAD_BASE
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc(x[:, :25]), atol=1e-5, rtol=1e-5)


def test_cls_pooling() -> None:
    torch.manual_seed(0)
    enc = BertSequenceEncoder(3, 20, pooling="cls", **SMALL).eval()
    x = torch.randint(0, 4, (2, 20))
    tokens, mask = enc.tokenize(x)
    assert tokens.shape == (2, 19) and bool((tokens[:, 0] == 2).all())
    with torch.no_grad():
        torch.testing.assert_close(enc(x), enc.forward_tokens(tokens, mask)[:, 0])
