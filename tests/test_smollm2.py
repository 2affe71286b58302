"""The real SmolLM2-135M-Instruct through the HF-format path: same greedy tokens as transformers."""

import torch
from transformers import LlamaForCausalLM

from llama import Tokenizer, generate, load_llama

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
QUESTIONS = ["What is a saxophone?", "Name three instruments in a string quartet.", "Hi!"]


def test_greedy_tokens_match_transformers(smollm2_dir):
    model = load_llama(smollm2_dir)
    assert (model.args.n_layers, model.args.dim, model.args.kv_heads, model.args.vocab_size) == (30, 576, 3, 49152)
    tok = Tokenizer(smollm2_dir)
    prompts = [tok.encode(CHAT.format(q), bos=False) for q in QUESTIONS]
    ours = generate(model, tok, prompts, max_new_tokens=20)

    hf = LlamaForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    for prompt, completion in zip(prompts, ours, strict=True):
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                          eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)
        theirs = out[0, len(prompt):].tolist()
        if tok.eos_id in theirs:
            theirs = theirs[: theirs.index(tok.eos_id)]
        assert completion.tokens == theirs
    assert "saxophone" in ours[0].text.lower() or "instrument" in ours[0].text.lower()
