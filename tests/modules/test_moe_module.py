"""MoETransformer: experts start as copies, routing picks the domain's expert, save/load round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from embedkit.errors import ModelError
from embedkit.models import model_fingerprint
from embedkit.modules import RoutedExperts, model_domains, routed, to_moe
from embedkit.modules.experts import add_experts

TEXTS = ["a cat sleeps on the sofa", "stock prices fell", "the guitar is plucked"]


def _experts(model) -> list[RoutedExperts]:
    return [m for m in model.modules() if isinstance(m, RoutedExperts)]


def _perturb(model, expert: int, amount: float = 0.05) -> None:
    with torch.no_grad():
        for block in _experts(model):
            for p in block.experts[expert].parameters():
                p.add_(amount)


@pytest.fixture()
def moe(tiny_model):
    return to_moe(tiny_model, ["science", "news", "nli"])


def test_experts_start_as_copies_of_the_feed_forward_block(tiny_model, moe):
    base = tiny_model.encode(TEXTS)
    for domain in model_domains(moe):
        np.testing.assert_allclose(moe.encode(TEXTS, domain=domain), base, atol=1e-6)
    # every layer of the 2-layer tiny BERT: intermediate + output, 3 copies each
    assert len(_experts(moe)) == 4 and all(len(b.experts) == 3 for b in _experts(moe))


def test_chosen_layers_only(tiny_model):
    model = to_moe(tiny_model, ["a", "b"], expert_layers=[-1])
    assert model[0].expert_layers == [1]
    assert len(_experts(model)) == 2
    with pytest.raises(ModelError, match="layer 5 does not exist"):
        to_moe(tiny_model, ["a", "b"], expert_layers=[5])


def test_routing_uses_the_domains_expert(moe):
    _perturb(moe, expert=1)
    science, news = moe.encode(TEXTS, domain="science"), moe.encode(TEXTS, domain="news")
    assert np.abs(science - news).max() > 1e-3
    np.testing.assert_allclose(moe.encode(TEXTS, domain="nli"), science, atol=1e-6)  # experts 0 and 2 unchanged
    with routed(moe, "news"):
        np.testing.assert_allclose(moe.encode(TEXTS), news, atol=1e-6)
    np.testing.assert_allclose(moe.encode(TEXTS), science, atol=1e-6)  # default domain after the block


def test_per_row_routing_matches_whole_batch_routing(moe):
    _perturb(moe, expert=2)
    features = moe.preprocess(TEXTS)
    whole = {d: moe(dict(features, domain_ids=torch.full((3,), i)))["sentence_embedding"] for i, d in
             enumerate(["science", "news", "nli"])}
    mixed = moe(dict(features, domain_ids=torch.tensor([2, 0, 1])))["sentence_embedding"]
    torch.testing.assert_close(mixed[0], whole["nli"][0])
    torch.testing.assert_close(mixed[1], whole["science"][1])
    torch.testing.assert_close(mixed[2], whole["news"][2])


def test_other_experts_untouched_by_a_training_step(moe):
    before = [[p.detach().clone() for p in b.experts.parameters()] for b in _experts(moe)]
    optimizer = torch.optim.AdamW(moe.parameters(), lr=1e-2, weight_decay=0.1)
    moe.train()
    features = moe.preprocess(TEXTS)
    features["domain_ids"] = torch.full((3,), 1)
    moe(features)["sentence_embedding"].pow(2).sum().backward()
    optimizer.step()
    for block, old in zip(_experts(moe), before):
        per_expert = len(old) // 3
        for index, (param, previous) in enumerate(zip(block.experts.parameters(), old)):
            changed = not torch.equal(param, previous)
            assert changed == (index // per_expert == 1), f"expert {index // per_expert} changed={changed}"


def test_save_load_round_trip(moe, tmp_path):
    from sentence_transformers import SentenceTransformer

    _perturb(moe, expert=1)
    moe.save(str(tmp_path / "moe"))
    loaded = SentenceTransformer(str(tmp_path / "moe"), trust_remote_code=True, device="cpu")
    assert model_domains(loaded) == ["science", "news", "nli"]
    for domain in model_domains(moe):
        np.testing.assert_allclose(loaded.encode(TEXTS, domain=domain), moe.encode(TEXTS, domain=domain), atol=1e-6)


def test_uses_embedkit_modules_marks_only_embedkit_folders(moe, tiny_model_dir, tmp_path):
    from embedkit.modules.loading import uses_embedkit_modules

    moe.save(str(tmp_path / "moe"))
    assert uses_embedkit_modules(tmp_path / "moe")
    assert not uses_embedkit_modules(tiny_model_dir)


def test_learned_router_is_saved_and_routes_without_a_domain(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = to_moe(tiny_model, ["a", "b"], learned_router=True)
    with torch.no_grad():
        model[0].domain_router.bias.copy_(torch.tensor([-5.0, 5.0]))  # always predicts "b"
    _perturb(model, expert=1)
    np.testing.assert_allclose(model.encode(TEXTS), model.encode(TEXTS, domain="b"), atol=1e-6)
    model.save(str(tmp_path / "m"))
    loaded = SentenceTransformer(str(tmp_path / "m"), trust_remote_code=True, device="cpu")
    torch.testing.assert_close(loaded[0].domain_router.bias, model[0].domain_router.bias)


def test_active_domain_changes_the_fingerprint(moe):
    plain = model_fingerprint(moe)
    with routed(moe, "news"):
        news = model_fingerprint(moe)
    assert news != plain and model_fingerprint(moe) == plain


def test_bad_domains(moe, tiny_model):
    with pytest.raises(ModelError, match="unknown domain 'law'"):
        moe.encode(TEXTS, domain="law")
    with pytest.raises(ModelError, match="one domain name"):
        moe.encode(TEXTS, domain=["science", "news", "nli"])
    with pytest.raises(ModelError, match="no domain experts"):
        with routed(tiny_model, "science"):
            pass
    with routed(tiny_model, None):  # no domain: a no-op on any model
        pass
    with pytest.raises(ModelError, match="distinct"):
        to_moe(tiny_model, ["a", "a"])


def test_add_experts_refuses_a_layer_twice(tiny_model):
    hf = tiny_model[0].auto_model
    add_experts(hf, 2, [0])
    with pytest.raises(ModelError, match="already has experts"):
        add_experts(hf, 2, [0])


def test_threads_sharing_the_model_keep_their_own_route(moe):
    """embedkit's encoding engine runs forward passes of one model on several threads at once."""
    import threading

    _perturb(moe, expert=1)
    features = moe.preprocess(TEXTS)
    expected = {d: moe(dict(features), domain=d)["sentence_embedding"].detach() for d in ("science", "news")}
    errors: list[BaseException] = []

    def work(domain: str) -> None:
        try:
            with torch.inference_mode():
                for _ in range(20):
                    torch.testing.assert_close(moe(dict(features), domain=domain)["sentence_embedding"],
                                               expected[domain])
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in ("science", "news", "science", "news")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
