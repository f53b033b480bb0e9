"""attn_implementation="swajit" in small randomly initialized Mistral and Gemma 3 models (no downloads) against
attn_implementation="eager": logits of a prompt longer than the sliding window, a 4-token speculative step over the
cache, and greedy generations."""
import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")
import swajit.hf  # noqa: E402  registers "swajit"

PROMPT_LEN, WINDOW = 21, 8  # the prompt crosses the window and runs as chunks of 8, 8 and 5 on the CPU
LOGIT_TOLERANCE = 5e-3  # float32 models attend in float16 (swajit.hf.FLOAT32_ATTENTION_DTYPE); measured 3e-4 to 5e-4


def mistral():
    config = transformers.MistralConfig(vocab_size=128, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                                        sliding_window=WINDOW, max_position_embeddings=256)
    return transformers.MistralForCausalLM, config


def gemma3():
    config = transformers.Gemma3TextConfig(vocab_size=128, hidden_size=128, intermediate_size=256,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                           head_dim=64, sliding_window=WINDOW, query_pre_attn_scalar=64,
                                           layer_types=["sliding_attention", "full_attention"],
                                           max_position_embeddings=256)
    return transformers.Gemma3ForCausalLM, config


def model_pair(make, device):
    """The same random weights under eager and under swajit attention."""
    model_class, config = make()
    torch.manual_seed(0)
    eager_config = copy.deepcopy(config)
    eager_config._attn_implementation = "eager"
    eager = model_class(eager_config).to(device).eval()
    swajit_config = copy.deepcopy(config)
    swajit_config._attn_implementation = "swajit"
    ours = model_class(swajit_config).to(device).eval()
    ours.load_state_dict(eager.state_dict())
    assert ours.config._attn_implementation == "swajit"
    return eager, ours


@pytest.mark.parametrize("make", [mistral, gemma3], ids=["mistral", "gemma3"])
@torch.no_grad()
def test_logits_match_eager_prefill_then_speculative_step(make, device):
    eager, ours = model_pair(make, device)
    prompt = torch.randint(0, 128, (2, PROMPT_LEN), device=device)
    draft = torch.randint(0, 128, (2, 4), device=device)
    results = []
    for model in (eager, ours):
        first = model(prompt, use_cache=True)
        step = model(draft, past_key_values=first.past_key_values, use_cache=True)  # q_seqlen 4 over the cache
        results.append((first.logits, step.logits))
    for expected, actual in zip(*results):
        assert actual.abs().max() > 0
        torch.testing.assert_close(actual, expected, atol=LOGIT_TOLERANCE, rtol=LOGIT_TOLERANCE)


@pytest.mark.parametrize("make", [mistral, gemma3], ids=["mistral", "gemma3"])
@torch.no_grad()
def test_greedy_generation_matches_eager(make, device):
    eager, ours = model_pair(make, device)
    prompt = torch.randint(0, 128, (2, PROMPT_LEN), device=device)
    options = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    expected = eager.generate(prompt, **options)
    actual = ours.generate(prompt, **options)
    assert actual.shape == (2, PROMPT_LEN + 12)
    assert torch.equal(actual, expected)


@torch.no_grad()
def test_padded_batches_are_refused(device):
    _, ours = model_pair(mistral, device)
    prompt = torch.randint(0, 128, (2, 6), device=device)
    mask = torch.ones_like(prompt)
    mask[0, :2] = 0
    with pytest.raises(swajit.Error, match="without padding") as info:
        ours(prompt, attention_mask=mask)
    assert info.value.code == swajit.ErrorCode.unsupported


@pytest.mark.parametrize("make", [mistral, gemma3], ids=["mistral", "gemma3"])
@torch.no_grad()
def test_beam_search_and_cropped_cache_match_eager(make, device):
    """Histories that do not simply grow: beams reordered every step, and a step over a cache that lost the last
    step's tokens (rejected speculative tokens: the step runs on a copy taken before them); the paged cache is
    rebuilt from the transformers cache."""
    eager, ours = model_pair(make, device)
    prompt = torch.randint(0, 128, (1, PROMPT_LEN), device=device)
    options = dict(max_new_tokens=6, do_sample=False, num_beams=3, pad_token_id=0)
    assert torch.equal(ours.generate(prompt, **options), eager.generate(prompt, **options))
    draft, accepted = torch.randint(0, 128, (1, 3), device=device), torch.randint(0, 128, (1, 2), device=device)
    results = []
    for model in (eager, ours):
        first = model(prompt, use_cache=True)
        before_draft = copy.deepcopy(first.past_key_values)
        model(draft, past_key_values=first.past_key_values)  # rejected: its keys stay in the paged cache
        results.append(model(accepted, past_key_values=before_draft).logits)
    torch.testing.assert_close(results[1], results[0], atol=LOGIT_TOLERANCE, rtol=LOGIT_TOLERANCE)
