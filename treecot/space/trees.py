"""The Space's Trees tab: a dataset of search trees opened from the data roots or the Hub, one problem's
MCTS tree drawn with a node's text and path, and the SFT path and preference pair built from that tree
(`TreesHandlers`)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from treecot.hub import is_repo_id
from treecot.space.errors import SpaceError, call_with_deadline, request_deadline, user_message
from treecot.space.render import (
    node_label,
    node_markdown,
    pair_segments,
    path_segments,
    problem_markdown,
    snippet,
    tree_plot_spec,
    vega_plot,
)
from treecot.space.sources import (
    LRU,
    TreeSource,
    check_local_path,
    check_revision,
    fingerprint,
    input_text,
    load_tree_source,
    refuse_hub,
    rows_for_tree,
)

if TYPE_CHECKING:
    from treecot.search.tree import Tree
    from treecot.space.config import SpaceConfig


class TreesHandlers:
    """The Trees tab's handlers, mixed into `SpaceApp` (which sets `config` and `_sources`); each returns
    component values."""

    config: SpaceConfig
    _sources: LRU

    def source(self, dataset: str, revision: str | None, deadline: float | None = None) -> TreeSource:
        """A dataset's trees, cached (local sources are re-read when their files change).

        Args:
            dataset (`str`):
                A local folder under the data roots or a Hub id.
            revision (`str`, *optional*):
                The branch, tag or commit (default ``main``).
            deadline (`float`, *optional*):
                When loading must end (default: the request's time limit from now).
        """
        dataset = input_text(dataset, "dataset")
        revision = check_revision(revision)
        allow_hub = self.config.hub_allowed(dataset)
        if dataset and not is_repo_id(dataset):
            path = check_local_path(dataset, self.config.roots, what="dataset")
            key: tuple = ("local", str(path), revision, fingerprint(path) if path.exists() else None)
        elif dataset and not allow_hub:
            raise refuse_hub("dataset", dataset)
        else:
            key = ("hub", dataset, revision)
        hit = self._sources.get(key)
        if hit is not None:
            return hit
        src = call_with_deadline(
            lambda: load_tree_source(dataset, revision, self.config.roots, allow_hub=allow_hub),
            deadline or request_deadline(self.config.request_timeout),
            self.config.request_timeout,
            "loading the dataset",
        )
        self._sources.put(key, src)
        return src

    @staticmethod
    def _problem_menu(src: TreeSource) -> list[tuple[str, str]]:
        choices = []
        for pid, tree in src.trees.items():
            nodes = tree.get("nodes", [])
            good = sum(1 for n in nodes if n.get("terminal") and n.get("correct") is True)
            bad = sum(1 for n in nodes if n.get("terminal") and n.get("correct") is False)
            question = snippet(str(tree["problem"].get("question", "")), 70)
            choices.append((f"{pid} · {question} ({len(nodes)} nodes, {good}✓ {bad}✗)", pid))
        if not choices:
            raise SpaceError(f"{src.location} (revision {src.revision}) holds no trees")
        return choices

    @staticmethod
    def _source_status(src: TreeSource) -> str:
        configs = "with its sft / dpo configs" if src.sft is not None or src.dpo is not None else "trees only"
        return (
            f"{len(src.trees)} trees from {html.escape(src.location)} (revision `{src.revision}`, {src.kind}, "
            f"{configs})"
        )

    def load_dataset(self, dataset: str, revision: str | None):
        """Open a dataset of trees.

        Args:
            dataset (`str`):
                A local folder under the data roots or a Hub id.
            revision (`str`, *optional*):
                The branch, tag or commit (default ``main``).

        Returns:
            `tuple`: (problem menu, revision menu, status).
        """
        import gradio as gr

        src = self.source(dataset, revision)
        choices = self._problem_menu(src)
        revisions = list(dict.fromkeys([src.revision, *src.revisions]))
        return (
            gr.Dropdown(choices=choices, value=choices[0][1]),
            gr.Dropdown(choices=revisions, value=src.revision),
            self._source_status(src),
        )

    @staticmethod
    def _node_id(tree: Tree, node_id: Any) -> int:
        try:
            nid = int(str(node_id).strip())
        except (TypeError, ValueError):
            raise SpaceError(
                f"choose a node: a node number between 0 and {len(tree) - 1}, got {node_id!r}"
            ) from None
        if not 0 <= nid < len(tree):
            raise SpaceError(f"the tree of {tree.problem_id} has no node {nid} (nodes 0–{len(tree) - 1})")
        return nid

    def show_problem(self, dataset: str, revision: str | None, problem_id: str, node_id: Any = None):
        """Show one problem of a dataset: its tree, SFT path, preference pair and a node.

        Args:
            dataset (`str`):
                A local folder under the data roots or a Hub id.
            revision (`str`, *optional*):
                The branch, tag or commit (default ``main``).
            problem_id (`str`):
                The problem (a unique prefix of its id is enough).
            node_id (`Any`, *optional*):
                The node shown (and drawn with its path); by default the SFT path's answer.

        Returns:
            `tuple`: (problem, plot, node menu, SFT info, SFT path, pair info, chosen, rejected, node, text,
            path).
        """
        import gradio as gr

        src = self.source(dataset, revision)
        tree = src.tree(problem_id)
        sft, dpo, origin = rows_for_tree(tree, src)
        if sft:
            selected = int(sft[0]["node_ids"][-1])
            row = sft[0]
            sft_info = (
                f"**SFT path** ({origin}): {len(sft)} row(s) for this problem; shown: the "
                f"{row.get('length_rank', '?')} correct path, nodes {list(row['node_ids'])}, "
                f"{row.get('n_tokens', '?')} tokens"
            )
            sft_segments = path_segments(tree, row["node_ids"])
        else:
            answers = tree.correct_answers() or tree.answer_nodes()
            selected = answers[0].id if answers else 0
            sft_info = f"**SFT path** ({origin}): none — this tree has no correct path"
            sft_segments = []
        if node_id not in (None, ""):
            selected = self._node_id(tree, node_id)
        if dpo:
            pair = dpo[0]
            shared = pair.get("shared_prefix") or ""
            pair_info = (
                f"**Preference pair** ({len(dpo)} for this problem): chosen nodes {list(pair.get('chosen_node_ids', []))}"
                f" vs rejected nodes {list(pair.get('rejected_node_ids', []))}; shared prefix "
                f"{pair.get('shared_prefix_tokens', len(shared))} tokens (highlighted)"
            )
            chosen = pair_segments(pair["chosen"], shared, "chosen")
            rejected = pair_segments(pair["rejected"], shared, "rejected")
        else:
            pair_info = "**Preference pair**: none — a pair needs a correct and a wrong path of this tree"
            chosen, rejected = [], []
        node_md, node_text, path_text = self._node_views(tree, selected)
        return (
            problem_markdown(tree, src),
            vega_plot(tree_plot_spec(tree, selected), "scatter"),
            gr.Dropdown(choices=[(node_label(n), n.id) for n in tree.nodes], value=selected),
            sft_info,
            sft_segments,
            pair_info,
            chosen,
            rejected,
            node_md,
            node_text,
            path_text,
        )

    @staticmethod
    def _node_views(tree: Tree, node_id: int) -> tuple[str, str, str]:
        node = tree.node(node_id)
        path = tree.serialize_path(node_id) if node_id else "(the root stands for the prompt: no text)"
        return node_markdown(tree, node_id), node.text, path

    def show_node(self, dataset: str, revision: str | None, problem_id: str, node_id: Any):
        """Show one node of a problem's tree.

        Args:
            dataset (`str`):
                A local folder under the data roots or a Hub id.
            revision (`str`, *optional*):
                The branch, tag or commit (default ``main``).
            problem_id (`str`):
                The problem.
            node_id (`Any`):
                The node's number.

        Returns:
            `tuple`: (node, text, path from the root, plot with that path highlighted).
        """
        tree = self.source(dataset, revision).tree(problem_id)
        nid = self._node_id(tree, node_id)
        return (*self._node_views(tree, nid), vega_plot(tree_plot_spec(tree, nid), "scatter"))

    def initial_trees(self, dataset: str, revision: str, problem: str, node: str):
        """Page load: open the dataset / problem / node given in the URL or the config (messages, not
        errors, when they cannot be opened).

        Args:
            dataset (`str`):
                The dataset (nothing is opened when empty).
            revision (`str`):
                Its revision.
            problem (`str`):
                The problem (default: the first).
            node (`str`):
                The node (default: the SFT path's answer).
        """
        import gradio as gr

        if not input_text(dataset, "dataset"):
            return tuple(gr.skip() for _ in range(3 + 11))
        try:
            src = self.source(dataset, revision)
            choices = self._problem_menu(src)
            pid = src.tree(input_text(problem, "problem") or choices[0][1]).problem_id
            views = self.show_problem(dataset, revision, pid, input_text(node, "node") or None)
            revisions = list(dict.fromkeys([src.revision, *src.revisions]))
            return (
                gr.Dropdown(choices=choices, value=pid),
                gr.Dropdown(choices=revisions, value=src.revision),
                self._source_status(src),
                *views,
            )
        except Exception as e:  # noqa: BLE001 - shown in the status line
            return (
                gr.skip(),
                gr.skip(),
                f"⚠️ {html.escape(user_message(e))}",
                *(gr.skip() for _ in range(11)),
            )
