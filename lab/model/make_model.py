# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a tiny random Llama model that vLLM serves, without any model hub.

    python make_model.py OUT_DIR

OUT_DIR gets config.json, generation_config.json, model.safetensors (float32, about 2.3 MB),
tokenizer.json and tokenizer_config.json. The tokenizer is a byte-level BPE (vocabulary 1024)
trained with `tokenizers` on a pseudo-text made from a seeded generator; the weights are seeded
random numbers. Shape: LlamaForCausalLM, hidden 128, 2 layers, 4 heads, 2 KV heads, head_dim 32
(vLLM's CPU attention needs head_dim >= 32). Its output is gibberish; its wire protocol,
tokenizer and weights are real. Needs only `tokenizers` besides the standard library.
"""

from __future__ import annotations

import array
import json
import os
import random
import struct
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SEED = 20260401
VOCAB = 1024
HIDDEN = 128
INTERMEDIATE = 256
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 32
SPECIAL = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2
MAX_POSITIONS = 2048
SYLLABLES = (*(c + v for c in "bdfgklmnprstvz" for v in "aeiou"), "an", "el", "in", "or")


def corpus(rng, sentences=4000):
    """Deterministic pseudo-text: a Zipf-ish vocabulary of syllable words, with punctuation."""
    words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _word in range(3000)]
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    for _sentence in range(sentences):
        chosen = rng.choices(words, weights=weights, k=rng.randint(4, 16))
        yield " ".join(chosen).capitalize() + rng.choice([".", ".", "!", "?", ","])


def train_tokenizer(rng):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus(rng)), trainer=trainer)
    if tok.get_vocab_size() != VOCAB:
        sys.exit(f"make_model.py: the tokenizer has {tok.get_vocab_size()} tokens, not {VOCAB}")
    return tok


def shapes():
    yield "model.embed_tokens.weight", (VOCAB, HIDDEN)
    for i in range(LAYERS):
        p = f"model.layers.{i}"
        yield f"{p}.input_layernorm.weight", (HIDDEN,)
        yield f"{p}.self_attn.q_proj.weight", (HEADS * HEAD_DIM, HIDDEN)
        yield f"{p}.self_attn.k_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)
        yield f"{p}.self_attn.v_proj.weight", (KV_HEADS * HEAD_DIM, HIDDEN)
        yield f"{p}.self_attn.o_proj.weight", (HIDDEN, HEADS * HEAD_DIM)
        yield f"{p}.post_attention_layernorm.weight", (HIDDEN,)
        yield f"{p}.mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN)
        yield f"{p}.mlp.up_proj.weight", (INTERMEDIATE, HIDDEN)
        yield f"{p}.mlp.down_proj.weight", (HIDDEN, INTERMEDIATE)
    yield "model.norm.weight", (HIDDEN,)
    yield "lm_head.weight", (VOCAB, HIDDEN)


def write_safetensors(path, rng):
    """The safetensors layout: u64 header length, JSON header, little-endian raw data."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, shape in shapes():
        count = 1
        for dim in shape:
            count *= dim
        if len(shape) == 1:  # RMSNorm weights
            values = array.array("f", [1.0] * count)
        else:
            values = array.array("f", (rng.gauss(0.0, 0.02) for _value in range(count)))
        if sys.byteorder != "little":
            values.byteswap()
        blob = values.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in blobs:
            f.write(blob)


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    train_tokenizer(rng).save(os.path.join(out, "tokenizer.json"))
    write_safetensors(os.path.join(out, "model.safetensors"), rng)
    write_json(
        os.path.join(out, "config.json"),
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": VOCAB,
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS,
            "head_dim": HEAD_DIM,
            "hidden_act": "silu",
            "max_position_embeddings": MAX_POSITIONS,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "attention_bias": False,
            "mlp_bias": False,
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        },
    )
    write_json(os.path.join(out, "generation_config.json"), {"bos_token_id": 1, "eos_token_id": 2})
    write_json(
        os.path.join(out, "tokenizer_config.json"),
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "unk_token": "<unk>",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "model_max_length": MAX_POSITIONS,
            "clean_up_tokenization_spaces": False,
            "chat_template": (
                "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                "{% if add_generation_prompt %}assistant:{% endif %}"
            ),
        },
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1])
