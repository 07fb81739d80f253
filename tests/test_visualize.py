"""Every figure function draws on small inputs and returns a Figure with the expected panels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from reid import Config  # noqa: E402
from reid.data import Market1501  # noqa: E402
from reid.visualize import (pipeline_figure, show_arcface_target, show_augmentations, show_batch, show_bnneck,  # noqa: E402
                            show_dataset_overview, show_hem_boundary, show_identity, show_mined_pairs,
                            show_history, show_network, show_schedule, show_toy_embeddings)
from reid.visualize import angle_window, class_angles  # noqa: E402


def _axes(fig):
    n = len(fig.axes)
    plt.close(fig)
    return n


def test_dataset_figures(tiny_root):
    ds = Market1501(tiny_root, verbose=False)
    cfg = Config.smoke(input_size=(64, 32))
    assert _axes(show_dataset_overview(ds)) == 3
    pid = ds.query[0].pid
    cams = len({r.camid for r in ds.query + ds.gallery if r.pid == pid})
    assert _axes(show_identity(ds, pid, max_per_camera=2)) == 2 * cams
    assert _axes(show_augmentations(ds.train[0].path, cfg, samples=2)) == 2 * 6
    images, pids = torch.randn(8, 3, 64, 32), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert _axes(show_batch(images, pids, cfg, max_identities=3)) == 3 * 2


def test_model_and_loss_figures():
    cfg = Config.smoke(input_size=(64, 32))
    f = torch.randn(16, 8)
    assert _axes(show_bnneck(f.abs(), f)) == 2
    toy = {"a": (torch.randn(10, 2), torch.arange(10) % 3), "b": (torch.randn(10, 2), torch.arange(10) % 3)}
    fig = show_toy_embeddings(toy)
    assert "within/between" in fig.axes[0].get_title() and "angle" in fig.axes[2].get_title()
    assert _axes(fig) == 4 and _axes(show_toy_embeddings(toy, angles=False)) == 2
    d_ap, d_an = torch.rand(8) + 1, torch.rand(8)
    idx = torch.arange(8)
    assert _axes(show_mined_pairs(torch.randn(8, 3, 64, 32), idx % 4, idx, idx, d_ap, d_an, cfg, [0, 1])) == 6
    fig = show_mined_pairs(torch.randn(8, 3, 64, 32), idx % 4, idx, idx, d_ap, d_an, cfg, [0, 1], camids=idx % 6)
    assert fig.axes[1].get_title() == f"d_ap = {d_ap[0]:.2f}\nid 0, c1", fig.axes[1].get_title()  # camid 0 is c1
    plt.close(fig)
    hem = show_hem_boundary(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.5, 1.5, 2.0]), (0.0, 0.2))
    labels = hem.axes[0].get_legend_handles_labels()[1]
    # hinge terms at α = 0: 0.8, -0.2, -0.7; at α = 0.2: 1.2 - 0.8 * d_an + 0.3 = 1.1, 0.3, -0.1 (chapter 4, exercise 1)
    assert labels[-2:] == ["α = 0: 33% count", "α = 0.2: 67% count"], labels
    plt.close(hem)
    # every line crosses the plot whole: it enters at the bottom edge, inside the horizontal range (chapter 4)
    d_ap, d_an = torch.rand(50) + 2.0, torch.rand(50) + 2.0
    hem = show_hem_boundary(d_ap, d_an, (0.0, 0.05, 0.1, 0.2))
    (x_low, x_high), (y_low, _) = hem.axes[0].get_xlim(), hem.axes[0].get_ylim()
    assert all(x_low <= ((1 - a) * y_low - 0.3) / (1 + a) < x_high for a in (0.0, 0.05, 0.1, 0.2))
    assert x_high > d_ap.max() and y_low < d_an.min()
    plt.close(hem)
    assert _axes(pipeline_figure()) == 1
    net = show_network("ResNet18", 512, (4, 2), (64, 32))
    words = " ".join(t.get_text() for t in net.axes[0].texts)
    assert all(w in words for w in ("ResNet18", "feat\n512", "bn_feat", "triplet", "ID loss", "test")), words
    plt.close(net)



def test_toy_figure_on_one_scale_and_its_angles_cut_no_cloud():
    """`same_scale` gives every embedding panel the limits of the largest; an angle panel starts in an empty
    direction, so that a cloud at -180/180 degrees is drawn in one piece, not at both edges."""
    small, large = torch.randn(12, 2) * 0.1, torch.randn(12, 2) * 5.0
    labels = torch.arange(12) % 3
    fig = show_toy_embeddings({"small": (small, labels), "large": (large, labels)}, angles=False, same_scale=True)
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim() and fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    assert fig.axes[0].get_xlim()[1] >= large.abs().max().item()
    plt.close(fig)

    assert angle_window([-150.0, 0.0, 90.0, 150.0]) == -180.0  # nothing near 180: the usual axis
    cloud = torch.tensor([176.0, 178.0, -179.0, -177.0, 0.0, 90.0])  # one cloud around 180, two elsewhere
    start = angle_window(cloud)
    assert -360.0 <= start < 0.0
    shown = (cloud.numpy() - start) % 360.0 + start  # as show_toy_embeddings places them
    assert shown[:4].max() - shown[:4].min() == 7.0  # the cloud in one piece (176 .. 183 = -177)
    emb = torch.stack([torch.cos(torch.deg2rad(cloud)), torch.sin(torch.deg2rad(cloud))], dim=1)
    fig = show_toy_embeddings({"a": (emb, torch.tensor([0, 0, 0, 0, 1, 2]))})
    xs = fig.axes[1].collections[0].get_offsets()[:, 0]
    assert xs[:4].max() - xs[:4].min() < 8 and fig.axes[1].get_xlim()[1] - fig.axes[1].get_xlim()[0] == 360.0
    plt.close(fig)

def test_a_class_whose_stray_point_lies_across_the_angle_axis_edge_is_drawn_in_one_piece():
    """The axis starts in the empty arc between 178 and 196 degrees, which leaves class 0's stray point at 196 (that
    is -164) at the other edge; `class_angles` draws it beside its class, past the edge, and moves nothing else."""
    theta = np.array([170.0, 172.0, 174.0, 176.0, 178.0, -164.0, 0.0, 10.0, 90.0])
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    start = angle_window(theta)
    on_axis = (theta - start) % 360.0 + start
    assert np.ptp(on_axis[:6]) > 300  # the plain 360-degree axis cuts class 0 in two
    shown = class_angles(theta, labels)
    assert shown[5] == 196.0 and np.ptp(shown[:6]) == 26.0  # in one piece, 18 degrees past 178
    assert np.array_equal(shown[:5], on_axis[:5]) and np.array_equal(shown[6:], on_axis[6:])
    emb = torch.from_numpy(np.stack([np.cos(np.radians(theta)), np.sin(np.radians(theta))], axis=1)).float()
    fig = show_toy_embeddings({"a": (emb, torch.from_numpy(labels))})
    low, high = fig.axes[1].get_xlim()
    assert low <= shown.min() and high >= 196.0  # the panel widens to show the class past its edge
    plt.close(fig)


def test_arcface_figure_draws_the_heads_own_target():
    """The true-class curve is the head's output: cos(theta + m) up to theta = pi - m, cos(theta) - m sin(m) after."""
    import math

    from reid.model import ArcFace

    torch.manual_seed(0)
    head = ArcFace(16, 3, s=30.0, m=0.5)
    fig = show_arcface_target(head)
    curves = {line.get_label(): line.get_data() for line in fig.axes[0].lines if not line.get_label().startswith("_")}
    theta, target = curves["true class: the head's target"]
    theta = torch.deg2rad(torch.as_tensor(theta))
    target = torch.as_tensor(target)
    before = theta < math.pi - 0.5 - 1e-3
    after = theta > math.pi - 0.5 + 1e-3
    assert torch.allclose(target[before], torch.cos(theta[before] + 0.5), atol=1e-3)  # float32; the clamp at 0
    assert torch.allclose(target[after], torch.cos(theta[after]) - 0.5 * math.sin(0.5), atol=1e-3)
    plt.close(fig)


def test_training_figures():
    from reid.solver import lr_per_epoch

    cfg = Config.market1501()
    assert _axes(show_schedule({"paper": (cfg, lr_per_epoch(cfg))})) == 1
    orders = {"first": lr_per_epoch(cfg), "after": lr_per_epoch(cfg, step_first=False)}
    fig = show_schedule({"paper": (cfg, lr_per_epoch(cfg)), "zoom": (cfg, orders, (38, 42))}, ncols=3)
    assert len(fig.axes) == 3 and not fig.axes[2].axison  # the unused slot is blank
    zoom = fig.axes[1]
    assert zoom.get_xlim()[0] > 37 and zoom.get_xlim()[1] < 43 and list(zoom.get_xticks()) == [38, 39, 40, 41, 42]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["first", "after"]  # below the panels, once
    plt.close(fig)
    history = [{"epoch": e, "loss_total": 3.0 / e, "loss_id": 2.0 / e, "loss_triplet": 1.0 / e, "accuracy": e / 4}
               for e in range(1, 5)]
    history[1].update(mAP=0.2, rank1=0.3)
    history[3].update(mAP=0.5, rank1=0.6)
    fig = show_history(history, title="t")
    assert len(fig.axes) == 3 and len(fig.axes[2].lines) == 2
    plt.close(fig)
    fig = show_history(history, title="t", lr_steps=(3, 40))  # a line before epoch 3; 40 is past the run
    assert [len(ax.lines) for ax in fig.axes] == [3 + 1, 1 + 1, 2 + 1]
    assert all(ax.get_xlim() == fig.axes[0].get_xlim() for ax in fig.axes)  # one epoch axis for the three
    plt.close(fig)


def test_evaluation_figures(tiny_root):
    import numpy as np

    from reid.evaluation import evaluate_rank
    from reid.reranking import SearchResult
    from reid.visualize import show_cmc, show_distance_histograms, show_ranked_lists, show_search_heatmap

    ds = Market1501(tiny_root, verbose=False)
    q, g = ds.query[:3], ds.gallery
    q_pids, g_pids = np.array([r.pid for r in q]), np.array([r.pid for r in g])
    q_cams, g_cams = np.array([r.camid for r in q]), np.array([r.camid for r in g])
    dist = np.random.default_rng(0).random((len(q), len(g))) + (q_pids[:, None] != g_pids[None, :])
    assert _axes(show_ranked_lists(q, g, dist, rows=[0, 2], top=5)) == 2 * 6
    # the query framed blue as in show_identity; a distractor (pid 0) says so in its title, a person does not
    distractor = next(i for i, r in enumerate(g) if r.pid == 0)
    person = next(i for i, r in enumerate(g) if r.pid not in (0, q[0].pid))
    near = np.full((len(q), len(g)), 9.0)
    near[0, distractor], near[0, person] = 0.0, 1.0
    fig = show_ranked_lists(q, g, near, rows=[0], top=2)
    titles = [ax.get_title() for ax in fig.axes]
    query_frame = fig.axes[0].spines["left"].get_edgecolor()
    plt.close(fig)
    assert titles == [f"query (id {q[0].pid})", "rank 1 (0000)", "rank 2"]
    assert matplotlib.colors.same_color(query_frame, "tab:blue")
    res = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    assert _axes(show_cmc({"a": res, "b": res})) == 1
    from reid.evaluation import RankResult

    long_curve = RankResult(np.linspace(0.5, 1.0, 30), 0.5, 0.2, 3)
    ticks = show_cmc({"a": long_curve}, max_rank=20).axes[0].get_xticks()  # the ranks tables quote
    assert list(ticks) == [1, 5, 10, 15, 20], ticks
    assert list(show_cmc({"a": long_curve}, max_rank=6).axes[0].get_xticks()[:2]) != [1, 5]  # short: every rank
    assert _axes(show_distance_histograms(dist, q_pids, g_pids, q_cams, g_cams)) == 1
    rows = [{"k1": k1, "k2": k2, "lambda": lam, "mAP": 0.5 + k1 / 100, "rank1": 0.6, "mINP": 0.1}
            for k1 in (4, 6) for k2 in (2, 3) for lam in (0.1, 0.3)]
    result = SearchResult(rows, rows[-1], {"mAP": 0.4, "rank1": 0.5, "mINP": 0.1})
    assert _axes(show_search_heatmap(result)) == 2 + 1  # two lambdas and the colour bar
    from reid.visualize import show_k_reciprocal

    records = q + g[:12]
    fig = show_k_reciprocal(records, 0, list(range(13)), [True, False] * 6 + [True])
    assert len(fig.axes) == 11 * 3  # the image's row, then 12 neighbours over two rows of 11
    plt.close(fig)
