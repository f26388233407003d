"""SNP genotypes of a participant as text, in gene blocks, and back.

Two formats (the model bundle records which one a model was trained with):

- ``verbose`` (close to the paper: gene name, rsID and genotype per SNP)::

      APOE: rs429358=T/C, rs7412=C/C; TOMM40: rs157580=A/G

  A genotype lists the A2 allele(s) first, then the A1 allele(s): dosage 2 = ``A1/A1``, 1 = ``A2/A1``,
  0 = ``A2/A2``.
- ``compact`` (far fewer tokens: gene name, then one digit per SNP, the A1 dosage, in panel order)::

      APOE 10; TOMM40 1

  A tokenizer that merges digits (byte-level BPE that learned ``210``, Llama-3 and Qwen grouping up to 3
  digits) would give no token of its own to a SNP's dosage, so the compact format takes a dosage
  separator: ``""`` when the tokenizer already splits digits one by one (rgenima's tiny tokenizer,
  SmolLM2), ``" "`` when it merges them (``APOE 1 0``). :func:`dosage_separator` probes a tokenizer for
  it, and the model bundle records the one a model was trained with (``prompt.dosage_separator``).

Text carries genotype calls, so a dosage is rounded to the nearest call (an imputed 2 x freq becomes the
most likely genotype). Augmentation permutes the order of gene blocks with a seed; the SNP order inside a
gene never changes. :func:`count_tokens` reports the tokens a tokenizer spends on each text.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from rgenima_app.errors import ProcessingError

FORMATS = ("verbose", "compact")
_BLOCK_SEP, _SNP_SEP = "; ", ", "
#: Dosage separators :func:`dosage_separator` chooses from, in order of preference (fewest tokens first).
DOSAGE_SEPARATORS = ("", " ")
_PROBE = "APOE 0120112021; CLU 2101"  # gene names without digits: only dosages are digits


def dosage_separator(tokenizer: Any) -> str:
    """The separator between the dosages of the compact format that gives one token per dosage with
    ``tokenizer``: ``""`` when it splits digits one by one, else ``" "`` (a tokenizer that merges even
    space-separated digits gets ``" "`` too: the best it allows)."""
    for sep in DOSAGE_SEPARATORS:
        if one_token_per_dosage(tokenizer, sep):
            return sep
    return DOSAGE_SEPARATORS[-1]


def one_token_per_dosage(tokenizer: Any, sep: str = "", text: str = _PROBE) -> bool:
    """Whether every dosage digit of a compact text (``sep`` between dosages) is a token of its own:
    the tokens that hold a digit hold exactly one digit and nothing but spacing beside it."""
    text = re.sub(r"(?<=\d)(?=\d)", sep, text) if sep else text
    pieces = token_pieces(tokenizer, text)
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    return len(digits) == sum(c.isdigit() for c in text) and all(len(p.strip()) == 1 for p in digits)


def dosages_with_own_token(tokenizer: Any, text: str) -> list[bool]:
    """For every dosage of a compact text (any separator), whether its digit is a token of its own
    (nothing but spacing beside it in that token). Gene names may hold digits; they are not dosages."""
    pieces = token_pieces(tokenizer, text)
    if "".join(pieces) != text:
        raise ValueError("the tokenizer does not decode token by token back to the text")
    owner = [k for k, piece in enumerate(pieces) for _ in piece]  # the token of every character
    out = []
    for block in re.finditer(r"[^;]+", text):
        match = re.fullmatch(r"\s*(.+?) ([0-9](?:[ ]?[0-9])*)\s*", block.group())
        if match is None:
            raise ValueError(f"not a compact genotype block: {block.group()!r}")
        for i, c in enumerate(match.group(2)):
            if c.isdigit():
                at = block.start() + match.start(2) + i
                out.append(pieces[owner[at]].strip() == c)
    return out


def token_pieces(tokenizer: Any, text: str) -> list[str]:
    """The text each token of ``text`` stands for (decoded one token at a time)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    ids = ids.ids if hasattr(ids, "ids") else ids
    return [tokenizer.decode([i]) for i in ids]


def gene_blocks(table: pd.DataFrame) -> list[str]:
    """Genes in the order of their first SNP in ``table`` (genome order for a panel table)."""
    return list(pd.unique(table["gene"]))


def permute_genes(genes: Sequence[str], seed: int | np.random.Generator) -> list[str]:
    """A seeded permutation of gene blocks (augmentation)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return [genes[i] for i in rng.permutation(len(genes))]


def serialize_genotypes(table: pd.DataFrame, fmt: str = "compact", gene_order: Sequence[str] | None = None,
                        seed: int | np.random.Generator | None = None, sep: str = "") -> str:
    """Text of one participant's table (``snp, gene, a1, a2, dosage``) in gene blocks.

    ``gene_order`` fixes the order of blocks; otherwise they follow the table, permuted when ``seed`` is
    given. Rows keep their order inside each gene. ``sep`` goes between the dosages of a compact block
    (see :func:`dosage_separator`); the verbose format ignores it.
    """
    _check_format(fmt)
    _check_separator(sep)
    genes = list(gene_order) if gene_order is not None else gene_blocks(table)
    if gene_order is None and seed is not None:
        genes = permute_genes(genes, seed)
    calls = np.clip(np.rint(table["dosage"].to_numpy(float)), 0, 2).astype(int)
    by_gene: dict[str, list[int]] = {}
    for i, gene in enumerate(table["gene"].to_numpy()):
        by_gene.setdefault(gene, []).append(i)
    snps, a1, a2 = table["snp"].to_numpy(), table["a1"].to_numpy(), table["a2"].to_numpy()
    blocks = []
    for gene in genes:
        rows = by_gene.get(gene, [])
        if fmt == "compact":
            blocks.append(f"{gene} " + sep.join(str(calls[i]) for i in rows))
        else:
            alleles = [(a2[i], a2[i]) if calls[i] == 0 else (a2[i], a1[i]) if calls[i] == 1 else (a1[i], a1[i])
                       for i in rows]
            blocks.append(f"{gene}: " + _SNP_SEP.join(f"{snps[i]}={x}/{y}" for i, (x, y) in zip(rows, alleles)))
    return _BLOCK_SEP.join(blocks)


def parse_genotype_text(text: str, snp_panel: pd.DataFrame, fmt: str = "compact", sep: str = "") -> pd.DataFrame:
    """Dosages back from a text, as ``snp, gene, dosage`` in the order of ``snp_panel`` (``snp, gene, a1,
    a2``); ``sep`` is the compact format's dosage separator. Raises :class:`ProcessingError` when the
    text does not fit the panel."""
    _check_format(fmt)
    _check_separator(sep)
    panel = snp_panel.reset_index(drop=True)
    dosage: dict[str, int] = {}
    for block in text.split(_BLOCK_SEP):
        if fmt == "compact":
            match = re.fullmatch(r"(.+?) ([0-9](?:%s[0-9])*)" % re.escape(sep), block)
            gene, digits = (match.group(1), match.group(2).replace(sep, "") if sep else match.group(2)) \
                if match else block.rpartition(" ")[::2]
            snps = panel.loc[panel["gene"] == gene, "snp"].tolist()
            if len(snps) != len(digits) or not digits.isdigit():
                raise ProcessingError(f"compact genotype block {block!r} does not fit the {len(snps)} SNPs of {gene}")
            dosage.update(zip(snps, map(int, digits)))
        else:
            gene, _, entries = block.partition(": ")
            a1 = dict(zip(panel["snp"], panel["a1"]))
            for entry in entries.split(_SNP_SEP):
                snp, _, call = entry.rpartition("=")
                if snp not in a1:
                    raise ProcessingError(f"verbose genotype entry {entry!r} names a SNP outside the panel")
                dosage[snp] = sum(allele == a1[snp] for allele in call.split("/"))
    missing = [s for s in panel["snp"] if s not in dosage]
    if missing:
        raise ProcessingError(f"genotype text lacks {len(missing)} panel SNP(s), e.g. {missing[0]}")
    return pd.DataFrame({"snp": panel["snp"], "gene": panel["gene"], "dosage": [dosage[s] for s in panel["snp"]]})


def count_tokens(texts: Iterable[str], tokenizer: Any) -> list[int]:
    """Tokens per text for a tokenizer: a transformers tokenizer (``encode(..., add_special_tokens=False)``),
    a ``tokenizers.Tokenizer`` (``encode(...).ids``) or any callable returning token IDs."""
    counts = []
    for text in texts:
        if hasattr(tokenizer, "encode"):
            try:
                out = tokenizer.encode(text, add_special_tokens=False)
            except TypeError:
                out = tokenizer.encode(text)
        else:
            out = tokenizer(text)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        counts.append(len(out.ids) if hasattr(out, "ids") else len(out))
    return counts


def tokens_per_participant(tables: Iterable[pd.DataFrame], tokenizer: Any, fmt: str = "compact",
                           sep: str = "") -> dict[str, float]:
    """Mean, min and max tokens of the serialized genotypes of several participants."""
    counts = np.array(count_tokens((serialize_genotypes(t, fmt, sep=sep) for t in tables), tokenizer))
    return {"format": fmt, "separator": sep, "participants": int(counts.size), "mean": float(counts.mean()),
            "min": int(counts.min()), "max": int(counts.max())}


def _check_separator(sep: str) -> None:
    if sep not in DOSAGE_SEPARATORS:
        raise ValueError(f"unknown dosage separator {sep!r}; choose one of {DOSAGE_SEPARATORS}")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown SNP text format {fmt!r}; choose one of {', '.join(FORMATS)}")
