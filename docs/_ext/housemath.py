"""gradtx's plain-text equation notation, translated to LaTeX for the documentation site.

Docstrings write their update rules as indented plain-text blocks, readable in `help()`:

    m <- b1 m + (1 - b1) g
    u  = m^ / (sqrt(v^ + eps_root) + eps)      (eps_root > 0 for meta-learning)

This module turns such a block into one LaTeX `aligned` (or, for labelled rows, `array`)
environment that MathJax renders: `<-` is an arrow, `b1` is beta_1, `m^` is m-hat, `a / b` a
fraction, `sqrt(x)` a root, `||x||` a norm, `^` a power, `x_{k+1}` a subscript, and a trailing
parenthesized note in its own column (two or more spaces before it) is set as text. Prose inside a
row ("for k < W", "where mask is True", "once the variance is tractable") is set as text too, so
every row stays legible; `Rendered.problems` lists the pieces that look like math but could not be
parsed (see docs/README.md, "how to write an equation in a docstring").

Nothing here imports Sphinx: `tests/test_docs.py` runs it over every docstring of the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------------
# Vocabulary

GREEK = {
    "alpha": r"\alpha", "beta": r"\beta", "gamma": r"\gamma", "delta": r"\delta", "eps": r"\epsilon",
    "epsilon": r"\epsilon", "zeta": r"\zeta", "eta": r"\eta", "theta": r"\theta", "kappa": r"\kappa",
    "lambda": r"\lambda", "lam": r"\lambda", "mu": r"\mu", "nu": r"\nu", "xi": r"\xi", "pi": r"\pi",
    "rho": r"\rho", "sigma": r"\sigma", "tau": r"\tau", "phi": r"\phi", "chi": r"\chi", "psi": r"\psi",
    "omega": r"\omega", "Gamma": r"\Gamma", "Delta": r"\Delta", "Theta": r"\Theta", "Lambda": r"\Lambda",
    "Sigma": r"\Sigma", "Phi": r"\Phi", "Psi": r"\Psi", "Omega": r"\Omega",
}  # fmt: skip
# Adam's b1, b2 (and b3 of its descendants) are the paper's beta_1, beta_2.
BETAS = re.compile(r"b([0-9])")
# Functions set as operators: name -> (LaTeX, how the argument is wrapped).
FUNCTIONS = {
    "sqrt": (r"\sqrt", "root"), "abs": ("", "abs"), "floor": ("", "floor"), "ceil": ("", "ceil"),
    "max": (r"\max", "paren"), "min": (r"\min", "paren"), "exp": (r"\exp", "paren"), "log": (r"\log", "paren"),
    "log2": (r"\log_2", "paren"), "cos": (r"\cos", "paren"), "sin": (r"\sin", "paren"),
    "tanh": (r"\tanh", "paren"), "sign": (r"\operatorname{sign}", "paren"), "clip": (r"\operatorname{clip}", "paren"),
    "mean": (r"\operatorname{mean}", "paren"), "rms": (r"\operatorname{rms}", "paren"),
    "prod": (r"\prod", "paren"), "sum": (r"\sum", "paren"), "interp": (r"\operatorname{interp}", "paren"),
    "expm1": (r"\operatorname{expm1}", "paren"), "argmax": (r"\operatorname{argmax}", "paren"),
    "N": (r"\mathcal{N}", "paren"),
}  # fmt: skip
# Words that join math to more math or to prose: set as text, with what follows parsed again.
KEYWORDS = frozenset(
    [
        "if",
        "else",
        "for",
        "where",
        "when",
        "otherwise",
        "and",
        "or",
        "then",
        "while",
        "at",
        "after",
        "before",
        "every",
        "over",
        "with",
        "of",
        "on",
        "once",
        "unless",
        "per",
        "from",
        "by",
        "each",
        "until",
        "but",
        "not",
    ]
)
# Multi-letter names that may stand in an equation besides the documented function's own arguments.
NAMES = frozenset(
    [
        "value",
        "state",
        "acc",
        "opt",
        "div",
        "step",
        "steps",
        "count",
        "lr",
        "grad",
        "var",
        "std",
        "inner",
        "outer",
        "labels",
        "label",
        "cycle",
        "linear",
        "cosine",
        "schedule",
        "schedules",
        "transforms",
        "updates",
        "params",
        "grads",
        "True",
        "False",
        "None",
        "inf",
        "average",
        "loss",
        "losses",
    ]
)
# Short words of prose that are never symbols (single letters always are).
PROSE = frozenset(["an", "is", "it", "as", "be", "to", "no", "so", "do", "its", "the", "all"])
# Operators that take their range as a subscript: sum_i, max_j, prod_{k<t}.
BIG_OPERATORS = {"sum": r"\sum", "prod": r"\prod", "max": r"\max", "min": r"\min"}
SUBSCRIPT_WORDS = {"max": r"\max", "min": r"\min", "inf": r"\infty", "plus": "+", "minus": "-"}
RELATIONS = {"<-": r"\leftarrow", "->": r"\to", "=": "=", "<=": r"\le", ">=": r"\ge", "<": "<", ">": ">",
             "!=": r"\ne", "in": r"\in"}  # fmt: skip

# ---------------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class Tok:
    kind: str  # num, id, op, hat, pow, sub, other
    text: str
    start: int  # offsets into the source, so that a failed piece is set as its own text
    end: int
    space_before: bool


TOKEN = re.compile(
    r"(?P<num>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)"
    r"|(?P<id>[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*)"
    r"|(?P<op><-|->|<=|>=|!=|==|\.\.\.|\|\||\*\*|[-+*/=<>,;:()\[\]{}|^'~])"
    r"|(?P<other>\S)"
)


def tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(src):
        space = False
        while pos < len(src) and src[pos].isspace():
            pos, space = pos + 1, True
        if pos >= len(src):
            break
        m = TOKEN.match(src, pos)
        assert m is not None
        kind, text = m.lastgroup or "other", m.group()
        if text == "_" or (kind == "other" and text == "_"):
            kind = "other"
        if kind == "op" and text == "^" and toks and not space:
            nxt = src[m.end() : m.end() + 1]
            kind = "hat" if (nxt == "" or nxt.isspace() or nxt in "),;]|^/") else "pow"
            if src.startswith("_{", m.end()):  # s^_{t-1}: a hat, then a subscript
                kind = "hat"
                toks.append(Tok(kind, text, m.start(), m.end(), space))
                pos, end = m.end(), closing_brace(src, m.end() + 1)
                toks.append(Tok("sub", src[pos + 2 : end - 1], pos, end, False))
                pos = end
                continue
        elif kind == "op" and text == "^":
            kind = "pow"
        elif kind == "op" and text == "*" and toks and not space and star_ends(src, m.end()):
            kind = "star"  # f*: a superscript star, as the paper's optimum f^*
        elif kind == "op" and text == "<" and (end := inner_product_end(src, m.start())) is not None:
            kind = "langle"  # <d, x>: an inner product
            toks.append(Tok(kind, text, m.start(), m.end(), space))
            inner = tokenize(src[m.end() : end])
            toks.extend(Tok(t.kind, t.text, t.start + m.end(), t.end + m.end(), t.space_before) for t in inner)
            toks.append(Tok("rangle", ">", end, end + 1, False))
            pos = end + 1
            continue
        elif kind == "id" and src.startswith("_{", m.end()):  # x_{k+1}: the braces are part of the name
            j = closing_brace(src, m.end() + 1)
            toks.append(Tok(kind, text, m.start(), m.end(), space))
            toks.append(Tok("sub", src[m.end() + 2 : j - 1], m.end(), j, False))
            pos = j
            continue
        toks.append(Tok(kind, text, m.start(), m.end(), space))
        pos = m.end()
    return toks


def star_ends(src: str, pos: int) -> bool:
    """Whether a `*` that ends at `pos` closes a name (`f*`, `(f^ - f*)`) rather than multiplies."""
    return pos == len(src) or src[pos].isspace() or src[pos] in "),;]|>"


def inner_product_end(src: str, start: int) -> int | None:
    """Where the `>` that closes an inner product `<a, b>` opened at `start` is, or None.

    The brackets hug their contents (`<d, x>`, `<grad f(w), u>`) and hold one top-level comma,
    which tells them from the relations `a < b` and `a > b`."""
    if start + 1 >= len(src) or src[start + 1] in " =-" or (start and src[start - 1].isalnum()):
        return None
    depth, commas = 0, 0
    for j in range(start + 1, len(src)):
        ch = src[j]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "," and depth == 0:
            commas += 1
        elif ch == "<" and depth == 0:
            return None
        elif ch == ">" and depth == 0:
            if src[j - 1] in " -" or src[j + 1 : j + 2] == "=":
                return None
            return j if commas == 1 else None
    return None


def closing_brace(src: str, start: int) -> int:
    """The index after the brace that closes the one at `start`."""
    depth, j = 0, start
    while j < len(src):
        depth += {"{": 1, "}": -1}.get(src[j], 0)
        j += 1
        if depth == 0:
            break
    return j


# ---------------------------------------------------------------------------------------------------
# Parser: one pass, LaTeX out. Each parse function returns a Node.


class NotMath(Exception):
    """The tokens at this position are not in the house notation."""


@dataclass
class Node:
    tex: str
    kind: str = "atom"  # atom, paren, frac, power, call, sum, rel, seq, text
    tall: bool = False  # holds a fraction or a root: its parentheses grow (\left( ... \right))
    prose: bool = False  # holds a piece set as text

    def __str__(self) -> str:
        return self.tex


def escape_text(s: str) -> str:
    """Text for `\\text{...}`: the characters TeX treats specially, escaped (MathJax's textmacros).

    A caret, tilde or backslash has no text-mode escape that MathJax sets as the character itself
    (`\\^{}` is an accent over the letter before), so they become the look-alike characters."""
    out = []
    for ch in s:
        if ch in "{}_#%&$":
            out.append("\\" + ch)
        else:
            out.append(TEXT_LOOKALIKES.get(ch, ch))
    return "".join(out)


TEXT_LOOKALIKES = {"^": "\u02c6", "~": "\u02dc", "\\": "\u2216"}


def text(s: str) -> str:
    return r"\text{" + escape_text(s) + "}"


def roman(name: str) -> str:
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


class Parser:
    def __init__(self, src: str, names: Iterable[str] = ()):
        self.src = src
        self.toks = tokenize(src)
        self.i = 0
        self.names = set(names) | NAMES
        self.problems: list[str] = []

    # -- helpers
    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *texts: str) -> bool:
        t = self.peek()
        return t is not None and t.kind in ("op", "id") and t.text in texts

    def take(self) -> Tok:
        t = self.peek()
        if t is None:
            raise NotMath("unexpected end")
        self.i += 1
        return t

    def expect(self, *texts: str) -> Tok:
        t = self.peek()
        if t is None or t.text not in texts:
            raise NotMath(f"expected {texts}, got {t.text if t else 'end'}")
        return self.take()

    def rest_as_text(self, stop: frozenset[str]) -> Node:
        """Everything up to the closing bracket of this level (or the end) as text."""
        start = self.peek()
        depth, last = 0, None
        while (t := self.peek()) is not None:
            if (t.kind == "op" and t.text in "([{") or t.kind == "langle":
                depth += 1
            elif (t.kind == "op" and t.text in ")]}") or t.kind == "rangle":
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and t.kind == "op" and (t.text in stop or t.text in ",;"):
                break
            elif depth == 0 and last is not None and t.kind == "id" and t.text in KEYWORDS:
                break  # `as Adam, with v <- ...`: the word starts the next item, which may be math
            last = self.take()
        if start is None or last is None:
            raise NotMath("nothing to set as text")
        return Node(text(self.src[start.start : last.end]), "text", prose=True)

    # -- grammar
    def parse(self, prose_first: bool = False) -> Node:
        node = self.seq(frozenset(), prose_first)
        if self.peek() is not None:
            raise NotMath(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return node

    def seq(self, stop: frozenset[str], prose_first: bool = False) -> Node:
        """item ((',' | ';' | keyword) item)*: later items that are prose are set as text."""
        try:
            parts: list[Node | str] = [self.rel(stop)]
        except NotMath:
            if not prose_first:
                raise
            self.i = 0
            parts = [self.rest_as_text(stop)]
        while (t := self.peek()) is not None and not (t.kind == "op" and t.text in stop | {")", "]", "}"}):
            if t.kind == "rangle":
                break
            if t.kind == "op" and t.text in ",;:":
                self.take()
                nested = bool(stop & {")", "]", ">"})
                parts.append(t.text + (r"\ " if nested or t.text == ":" else r"\quad "))
            elif t.kind == "id" and t.text in KEYWORDS:
                self.take()
                gap = "" if parts and str(parts[-1]).endswith("\\quad ") else r"\quad"
                if parts and isinstance(parts[-1], Node) and parts[-1].kind == "text":
                    gap = r"\ "  # prose, then a word: `dividing by the maximum of v`, spaced as words
                parts.append(gap + r"\text{" + t.text + r"}\ ")
            else:
                raise NotMath(f"unexpected {t.text!r}")
            if self.peek() is None or self.at(*stop, ")", "]", "}") or self.peek().kind == "rangle":  # type: ignore[union-attr]
                break
            if self.at(",", ";", *KEYWORDS):  # `, else g`: the word is the next separator
                continue
            mark = self.i
            try:
                parts.append(self.rel(stop))
            except NotMath:
                self.i = mark
                parts.append(self.rest_as_text(stop))
        nodes = [p for p in parts if isinstance(p, Node)]
        # `...; ` or `...:` at the end of a row: no trailing space (`:\ ` stripped to `:\` would be `\\`)
        tex = "".join(str(p) for p in parts).removesuffix(r"\quad ").removesuffix(r"\ ").rstrip()
        return Node(tex, "seq" if len(parts) > 1 else nodes[0].kind, any(n.tall for n in nodes),
                    any(n.prose for n in nodes))  # fmt: skip

    def rel(self, stop: frozenset[str]) -> Node:
        first = self.expr(stop)
        parts, prose, tall = [first.tex], first.prose, first.tall
        while (t := self.peek()) is not None and t.text in RELATIONS and t.kind in ("op", "id"):
            self.take()
            parts.append(" " + RELATIONS[t.text] + " ")
            mark = self.i
            try:
                rhs = self.expr(stop)
            except NotMath:
                # `k = the number of updates already applied`: a definition in words.
                self.i = mark
                nxt = self.peek()
                if nxt is None or not (nxt.kind == "id" and not self.is_math_name(nxt.text)):
                    raise
                rhs = self.rest_as_text(stop)
            parts.append(rhs.tex)
            prose, tall = prose or rhs.prose, tall or rhs.tall
        return Node("".join(parts), "rel" if len(parts) > 1 else first.kind, tall, prose)

    def expr(self, stop: frozenset[str]) -> Node:
        parts: list[str] = []
        nodes: list[Node] = []
        if self.at("-", "+"):
            parts.append(self.take().text)
        nodes.append(self.term(stop))
        parts.append(nodes[-1].tex)
        while self.at("+", "-") and not self.at(*stop):
            parts.append(" " + self.take().text + " ")
            nodes.append(self.term(stop))
            parts.append(nodes[-1].tex)
        kind = "sum" if len(nodes) > 1 or parts[0] in "+-" else nodes[0].kind
        return Node("".join(parts), kind, any(n.tall for n in nodes), any(n.prose for n in nodes))

    def starts_factor(self, stop: frozenset[str]) -> bool:
        t = self.peek()
        if t is None or (t.kind == "op" and t.text in stop):
            return False
        if t.kind == "num":
            return True
        if t.kind == "id":
            return t.text not in KEYWORDS and t.text not in RELATIONS
        return (t.kind == "op" and t.text in ("(", "[", "||", "|", "...")) or t.kind == "langle"

    def term(self, stop: frozenset[str]) -> Node:
        """Factors by juxtaposition, '*' and '/'; a / b is a fraction of the juxtaposed run before it."""
        run: list[Node] = [self.factor(stop)]  # the juxtaposed factors since the last '*'
        done: list[str] = []  # finished pieces, joined by \cdot
        while True:
            if self.at("*") and not self.at(*stop):
                self.take()
                done.append(join_factors(run))
                run = [self.factor(stop)]
            elif self.at("/") and not self.at(*stop):
                self.take()
                den = self.factor(stop)
                num = run[0] if len(run) == 1 else Node(join_factors(run))
                run = [Node(r"\frac{" + unparen(num) + "}{" + unparen(den) + "}", "frac", True)]
            elif self.starts_factor(stop):
                run.append(self.factor(stop))
            else:
                break
        done.append(join_factors(run))
        nodes = run
        tex = r" \cdot ".join(done)
        single = len(done) == 1 and len(run) == 1
        return Node(tex, run[0].kind if single else "product", any(n.tall for n in nodes) or "frac" in tex,
                    any(n.prose for n in nodes))  # fmt: skip

    def factor(self, stop: frozenset[str]) -> Node:
        base = self.postfix(stop)
        while (t := self.peek()) is not None and t.kind == "pow":
            self.take()
            exp = self.exponent(stop)
            b = base.tex if base.kind in ("atom", "paren", "call", "norm") else "{" + base.tex + "}"
            if base.kind == "atom" and "^" in base.tex:  # mu^^2: the hat, then the power
                b = "{" + base.tex + "}"
            base = Node(b + "^{" + exp + "}", "power", base.tall, base.prose)
        return base

    def exponent(self, stop: frozenset[str]) -> str:
        t = self.peek()
        if t is None:
            raise NotMath("missing exponent")
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.seq(frozenset({")"}))
            self.expect(")")
            return inner.tex
        if t.kind == "op" and t.text == "-":
            self.take()
            return "-" + self.postfix(stop).tex
        if t.kind in ("num", "id"):
            return self.postfix(stop, call=False).tex
        raise NotMath(f"bad exponent {t.text!r}")

    def postfix(self, stop: frozenset[str], call: bool = True) -> Node:
        node = self.primary(stop, call)
        while (t := self.peek()) is not None and not t.space_before:
            if t.kind == "hat":
                self.take()
                node = Node(hat(node.tex), node.kind if node.kind != "atom" else "atom", node.tall, node.prose)
                if (sub := self.peek()) is not None and sub.kind == "sub":  # s^_{t-1}
                    self.take()
                    node = Node(node.tex + "_{" + Parser(sub.text, self.names).parse().tex + "}", node.kind)
            elif t.kind == "op" and t.text == "'":
                self.take()
                node = Node(node.tex + "'", node.kind, node.tall, node.prose)
            elif t.kind == "star":
                self.take()
                node = Node(node.tex + "^{*}", node.kind, node.tall, node.prose)
            elif t.kind == "op" and t.text == "~":
                self.take()
                node = Node(r"\tilde{" + node.tex + "}", node.kind, node.tall, node.prose)
            elif call and t.kind == "op" and t.text in ("(", "[") and node.kind in ("call", "atom", "index"):
                node = self.call_or_index(node, stop)
            else:
                break
        return node

    def call_or_index(self, fn: Node, stop: frozenset[str]) -> Node:
        opener = self.take().text
        closer = ")" if opener == "(" else "]"
        args = self.seq(frozenset({closer}))
        self.expect(closer)
        if opener == "[":
            return Node(fn.tex + "[" + args.tex + "]", "index", args.tall, args.prose)
        return Node(fn.tex + paren(args), "call", args.tall, args.prose)

    def is_math_name(self, name: str) -> bool:
        base = name.split("_")[0]
        if name in PROSE:
            return False
        return (
            len(name) <= 2
            or name in GREEK
            or base in GREEK
            or name in FUNCTIONS
            or name in self.names
            or "_" in name
            or any(c.isdigit() for c in name)
        )

    def primary(self, stop: frozenset[str], call: bool = True) -> Node:
        t = self.peek()
        if t is None:
            raise NotMath("unexpected end")
        if t.kind == "num":
            self.take()
            return Node(number(t.text))
        if t.kind == "op" and t.text == "...":
            self.take()
            return Node(r"\dots")
        if t.kind == "op" and t.text in ("(", "["):
            self.take()
            inner = self.seq(frozenset({")", "]"}))
            close = self.expect(")", "]").text
            if t.text == "(" and close == ")":
                return Node(paren(inner), "paren", inner.tall, inner.prose)
            left, right = ("[" if t.text == "[" else "("), ("]" if close == "]" else ")")
            return Node(left + inner.tex + right, "paren", inner.tall, inner.prose)
        if t.kind == "langle":
            self.take()
            inner = self.seq(frozenset({">"}))
            self.expect(">")
            return Node(r"\langle " + inner.tex + r" \rangle", "paren", inner.tall, inner.prose)
        if t.kind == "op" and t.text in ("||", "|"):
            self.take()
            inner = self.expr(stop | {t.text})
            self.expect(t.text)
            if t.text == "||":
                return Node(r"\left\| " + inner.tex + r" \right\|" if inner.tall else r"\|" + inner.tex + r"\|",
                            "norm", inner.tall, inner.prose)  # fmt: skip
            return Node(r"\left| " + inner.tex + r" \right|" if inner.tall else "|" + inner.tex + "|", "norm",
                        inner.tall, inner.prose)  # fmt: skip
        if t.kind == "id":
            if t.text in KEYWORDS or not self.is_math_name(t.text):
                raise NotMath(f"{t.text!r} is a word, not a symbol")
            self.take()
            nxt = self.peek()
            if call and t.text in FUNCTIONS and nxt is not None and nxt.text == "(" and not nxt.space_before:
                return self.function(t.text)
            if t.text in FUNCTIONS and t.text not in ("N",) and len(t.text) > 1 and not (nxt and nxt.kind == "sub"):
                return Node(FUNCTIONS[t.text][0] + " " if FUNCTIONS[t.text][0] else roman(t.text), "atom")
            tex = symbol(t.text)
            if nxt is not None and nxt.kind == "sub":
                self.take()
                sub = Parser(nxt.text, self.names).parse()
                if t.text in BIG_OPERATORS:  # sum_{i<n}
                    tex = BIG_OPERATORS[t.text]
                tex = tex + "_{" + sub.tex + "}" if "_" not in tex else "{" + tex + "}_{" + sub.tex + "}"
            return Node(tex, "atom")
        raise NotMath(f"unexpected {t.text!r}")

    def function(self, name: str) -> Node:
        tex, how = FUNCTIONS[name]
        self.expect("(")
        args = self.seq(frozenset({")"}))
        self.expect(")")
        if how == "root":
            if args.kind == "seq":
                raise NotMath("sqrt takes one argument")
            return Node(r"\sqrt{" + args.tex + "}", "call", True, args.prose)
        if how == "abs":
            return Node(r"\left| " + args.tex + r" \right|", "call", args.tall, args.prose)
        if how in ("floor", "ceil"):
            left, right = (r"\lfloor", r"\rfloor") if how == "floor" else (r"\lceil", r"\rceil")
            return Node(r"\left" + left + " " + args.tex + r" \right" + right, "call", args.tall, args.prose)
        return Node(tex + paren(args), "call", args.tall, args.prose)


def number(s: str) -> str:
    m = re.fullmatch(r"(\d+\.?\d*|\.\d+)[eE]([-+]?\d+)", s)
    if m is None:
        return s
    mantissa, exp = m.group(1), str(int(m.group(2)))
    return ("10" if mantissa in ("1", "1.", "1.0") else mantissa + r" \times 10") + "^{" + exp + "}"


def symbol(name: str) -> str:
    """A name as a symbol: b1 -> beta_1, eps_root -> epsilon_root, v_max -> v_max, max_norm in roman."""
    if m := BETAS.fullmatch(name):
        return r"\beta_{" + m.group(1) + "}"
    if name in GREEK:
        return GREEK[name]
    if name in ("True", "False", "None"):
        return r"\text{" + name + "}"
    if name == "inf":
        return r"\infty"
    base, _, sub = name.partition("_")
    if base in BIG_OPERATORS and len(sub) == 1 and sub.isalpha():  # sum_i
        return BIG_OPERATORS[base] + "_{" + sub + "}"
    if sub and "_" not in sub and len(sub) == 1 and base not in GREEK and not BETAS.fullmatch(base) and len(base) > 1:
        return roman(base) + "_{" + symbol(sub) + "}"  # cycle_j
    if sub and (len(base) == 1 or base in GREEK or BETAS.fullmatch(base)) and "_" not in sub:
        b = symbol(base)
        s = SUBSCRIPT_WORDS.get(sub) or (symbol(sub) if len(sub) == 1 or sub in GREEK or sub.isdigit() else roman(sub))
        return (b if "_" not in b else "{" + b + "}") + "_{" + s + "}"
    if "_" not in name and re.fullmatch(r"[A-Za-z][0-9]+", name):  # t1, G2
        return name[0] + "_{" + name[1:] + "}"
    if "_" not in name and len(name) == 2 and name[1] in "ijkn" and name[0].isalpha():  # tn, s_n
        return name[0] + "_{" + name[1] + "}"
    if len(name) == 1:
        return name
    return roman(name)


def hat(tex: str) -> str:
    """m -> \\hat{m}; v_{\\max} -> \\hat{v}_{\\max}."""
    m = re.fullmatch(r"(\\?[A-Za-z]+|\\beta)(_\{.*\})?", tex)
    if m:
        return r"\hat{" + m.group(1) + "}" + (m.group(2) or "")
    return r"\widehat{" + tex + "}"


def paren(node: Node) -> str:
    if node.tall:
        return r"\left(" + node.tex + r"\right)"
    return "(" + node.tex + ")"


def unparen(node: Node) -> str:
    """A fraction's numerator or denominator: its outer parentheses go (the bar groups it)."""
    tex = node.tex
    for left, right in ((r"\left(", r"\right)"), ("(", ")")):
        if node.kind == "paren" and tex.startswith(left) and tex.endswith(right):
            return tex[len(left) : -len(right)]
    return tex


def join_factors(run: list[Node]) -> str:
    out = ""
    for k, n in enumerate(run):
        if k and (n.tex[:1].isdigit() and out[-1:].isdigit()):
            out += r" \cdot "
        elif k:
            out += r"\, " if n.kind in ("atom", "power") and run[k - 1].kind in ("atom", "power") else " "
        out += n.tex
    return out


# ---------------------------------------------------------------------------------------------------
# Rows and blocks

COLUMNS = re.compile(r"\s{2,}")
LABEL = re.compile(r"^(?P<label>[A-Za-z_][\w ]*(?:\([^()]*(?:\([^()]*\)[^()]*)*\))?):(?=\s|$)")
CODE = re.compile(r"gradtx\.|#|\*\*|[A-Za-z_]\.[A-Za-z_]|\?|>>>|\w=[^=\s]|\bimport\b|\breturn\b")
HAS_RELATION = re.compile(r"<-|->|(?<![<>!=])=(?!=)|<=|>=")
LEAKED = re.compile(r"<-|\|\||\bsqrt\(|\bmax\(|\bmin\(")


@dataclass
class Rendered:
    latex: str  # the whole block, one environment
    rows: list[str]
    problems: list[str] = field(default_factory=list)  # math that could not be parsed, as written
    # For a block with labels (a table of several transformations): per row, (labels as written,
    # the equations in LaTeX, the note as written, the row as written where it is prose rather than
    # math). The site shows it as a table of inline math.
    table: list[tuple[list[str], str, str, str]] = field(default_factory=list)


def is_comment(col: str) -> bool:
    if not (col.startswith("(") and col.endswith(")")):
        return False
    depth = 0
    for k, ch in enumerate(col):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and k < len(col) - 1:
            return False
    return True


def balance(s: str) -> int:
    return s.count("(") - s.count(")") + s.count("[") - s.count("]")


def logical_rows(lines: list[str]) -> list[tuple[int, str]]:
    """(indent, text) per row; a line continuing an open parenthesis joins the row above."""
    rows: list[tuple[int, str]] = []
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if rows and balance(rows[-1][1]) > 0:
            rows[-1] = (rows[-1][0], rows[-1][1] + " " + line.strip())
        else:
            rows.append((indent, line.rstrip()[indent:]))
    return rows


def looks_like_code(lines: list[str]) -> bool:
    for _, row in logical_rows(lines):
        cols = [c for c in COLUMNS.split(row) if not is_comment(c)]
        if any(CODE.search(c) for c in cols):
            return True
    return False


def is_equation_block(lines: list[str]) -> bool:
    """An indented docstring block is an equation block when it is not code and states a relation."""
    if looks_like_code(lines):
        return False
    return any(HAS_RELATION.search(row) for _, row in logical_rows(lines))


def piece(src: str, names: Iterable[str]) -> tuple[str, bool, bool]:
    """(LaTeX, parsed as math, holds prose) for one column of a row."""
    lead = ""
    first = src.split(" ", 1)
    if len(first) == 2 and first[0] in KEYWORDS:  # `for k < W`: the word, then the math
        lead, src = r"\text{" + first[0] + r"}\ ", first[1]
    try:
        node = Parser(src, names).parse(prose_first=bool(lead))
    except NotMath:
        try:  # words, then math: `as Adam, with v <- max(b2 v, |g| + eps) and u = m^ / v`
            node = Parser(src, names).parse(prose_first=True)
        except NotMath:
            return text((lead and first[0] + " ") + src), False, True
        return lead + node.tex, True, True
    return lead + node.tex, True, node.prose


def body_offset(row: str, labels: int) -> int:
    """Where the body of a row begins, after its `labels` leading columns."""
    pos = 0
    for _ in range(labels):
        m = re.compile(r"\S+(?: \S+)*\s*").match(row, pos)
        pos = m.end() if m else pos
    return pos


def render_row(row: str, names: Iterable[str], problems: list[str]) -> tuple[str, str, str, list[str], str, str]:
    """(label, body, note) in LaTeX, then the labels, the note and (where it is not math) the body as written.

    The body has one '&' before its first relation."""
    cols = merge_columns(COLUMNS.split(row.strip()))
    label_parts: list[str] = []
    # Leading labels: `trace(mu):`, `matrices:`, or bare names before the math (`RAdam  scale_by_radam  u = ...`).
    while cols:
        if cols[0].endswith(":") and len(cols) == 1:  # `a matrix (...), G2 = g^2 + eps:` heads the rows below
            tex, ok, _ = piece(cols[0][:-1], names)
            return "", "&" + tex + ":", "", label_parts, "", "" if ok else cols[0]
        m = LABEL.match(cols[0])
        if m and m.end() < len(cols[0]):
            label_parts.append(m.group("label") + ":")
            cols[0] = cols[0][m.end() :].strip()
            break
        bare = re.compile(r"[A-Za-z_]\w+")
        named = len(cols) > 1 and bare.fullmatch(cols[0]) and cols[0] not in NAMES
        api_name = named and "_" in cols[0]  # `scale_by_amsgrad  as Adam, dividing by ...`
        before_math = named and (
            any(HAS_RELATION.search(c) for c in cols[1:]) or bare.fullmatch(cols[1]) or label_parts
        )
        if m or before_math or api_name:
            label_parts.append(cols.pop(0))
            continue
        break
    body: list[str] = []
    note = raw_note = ""
    aligned = False
    for k, col in enumerate(cols):
        if k and is_comment(col):  # a note: math if it is all math (`(c = max_norm >= 0)`), else text
            inner, ok, prose = piece(col[1:-1], names)
            as_math = ok and not prose and not re.search(r"\w=\w", col)
            tex = r"\left(" + inner + r"\right)" if as_math else text(col)
            if k == len(cols) - 1:  # the row's last column: set in a column of notes
                note, raw_note = tex, col
            else:
                body.append(r"\qquad " + tex)
            continue
        tex, ok, _ = piece(col, names)
        if HAS_RELATION.search(col) and LEAKED.search(leaked_text(tex)):
            problems.append(col)
        if not aligned and ok:
            tex, aligned = align_at_relation(tex)
        body.append((r"\qquad " if body else "") + tex)
    label = ""
    if label_parts:
        label = r"\quad ".join(label_tex(p) for p in label_parts)
    out = "".join(body)
    if not aligned:
        out = "&" + out
    in_words = cols[0] if len(cols) == 1 and not piece(cols[0], names)[1] else ""
    return label, out, note, label_parts, raw_note, in_words


OPERATOR_START = re.compile(r"^(<-|->|<=|>=|!=|=|\+|-(?!\d)|\*|/|\^)")
OPERATOR_END = re.compile(r"(<-|->|<=|>=|!=|=|\+|-|\*|/|\^|,|;)$")


def merge_columns(cols: list[str]) -> list[str]:
    """Columns are split at runs of spaces; spaces that only align an operator do not split."""
    out: list[str] = []
    for col in cols:
        if out and not is_comment(col) and (OPERATOR_START.match(col) or OPERATOR_END.search(out[-1])):
            out[-1] = out[-1] + " " + col
        else:
            out.append(col)
    return out


def leaked_text(tex: str) -> str:
    """The text that a rendered column sets as prose (where math might have leaked)."""
    found = " ".join(re.findall(r"\\text\{((?:[^{}]|\{[^{}]*\})*)\}", tex)).replace("\\_", "_")
    return found.replace(TEXT_LOOKALIKES["^"], "^")


def label_tex(label: str) -> str:
    if re.fullmatch(r"[A-Za-z_]\w*(\(.*\))?:?", label) and ("_" in label or "(" in label):
        return r"\texttt{" + escape_text(label) + "}"
    return text(label)


def align_at_relation(tex: str) -> tuple[str, bool]:
    """Put the alignment point '&' before the first top-level relation."""
    depth = 0
    k = 0
    rels = sorted((r for r in RELATIONS.values() if r), key=len, reverse=True)
    while k < len(tex):
        ch = tex[k]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0 and tex.startswith(r"\text", k):
            return tex, False
        elif depth == 0:
            for r in rels:
                if tex.startswith(" " + r + " ", k) and (r[0] == "\\" or r in "=<>"):
                    return tex[:k] + " &" + tex[k:], True
        k += 1
    return tex, False


def render_block(lines: list[str], names: Iterable[str] = ()) -> Rendered:
    """An equation block (docstring lines, any indentation) as one LaTeX environment."""
    names = set(names)
    rows = logical_rows(lines)
    base = min(indent for indent, _ in rows)
    problems: list[str] = []
    rendered = []
    table: list[tuple[list[str], str, str, str]] = []
    context = None  # the column where the body of the last labelled row began
    for indent, row in rows:
        if is_comment(row.strip()):  # a note on a line of its own
            rendered.append(("", "&", text(row.strip())))
            table.append(([], "", row.strip(), ""))
            continue
        label, body, note, raw_labels, raw_note, prose = render_row(row, names, problems)
        if label:
            labels = len(label.split(r"\quad "))
            context = indent + body_offset(row, labels)
            pad = ""
        elif context is not None and indent >= context:
            pad = r"\quad " * ((indent - context) // 4)
        else:
            context = None
            pad = r"\quad " * ((indent - base) // 4)
        if pad:
            body = body.replace("&", "&" + pad, 1) if body.startswith("&") else pad + body
        rendered.append((label, body, note))
        table.append((raw_labels, body.replace("&", "", 1), raw_note, prose))
    notes = any(note for _, _, note in rendered)
    if any(label for label, _, _ in rendered):  # labels | equations | notes
        tex_rows = [f"{label} & {body.replace('&', '', 1)}" + (f" & {note}" if note else "")
                    for label, body, note in rendered]  # fmt: skip
        env = ("\\begin{array}{lll}\n" if notes else "\\begin{array}{ll}\n", "\n\\end{array}")
    else:  # left side & right side && notes (aligned's columns go right, left, right, left)
        tex_rows = [body + (r" &\qquad & " + note if note else "") for _, body, note in rendered]
        env = ("\\begin{aligned}\n", "\n\\end{aligned}")
    latex = env[0] + " \\\\\n".join(tex_rows) + env[1]
    labelled = any(label for label, _, _ in rendered)
    return Rendered(latex, tex_rows, problems, table if labelled else [])


# ---------------------------------------------------------------------------------------------------
# Checks the tests run over every block

ALLOWED_MACROS = frozenset(
    {
        "leftarrow", "to", "le", "ge", "ne", "in", "frac", "sqrt", "hat", "widehat", "tilde", "text", "texttt",
        "mathrm", "mathcal", "operatorname", "left", "right", "lfloor", "rfloor", "lceil", "rceil", "max", "min",
        "exp", "log", "cos", "sin", "tanh", "prod", "sum", "dots", "cdot", "times", "quad", "qquad", "infty",
        "langle", "rangle", "begin", "end", "displaystyle",
    }
    | {g.lstrip("\\") for g in GREEK.values()}
)  # fmt: skip


def latex_errors(latex: str) -> list[str]:
    """What would make MathJax or KaTeX reject `latex`: unbalanced braces or \\left/\\right, unknown macros."""
    errors = []
    depth = 0
    k = 0
    while k < len(latex):
        ch = latex[k]
        if ch == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", latex[k:])
            assert m is not None
            name = m.group(1)
            if name.isalpha() and name not in ALLOWED_MACROS:
                errors.append(f"unknown macro \\{name}")
            k += len(m.group())
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                errors.append("'}' without '{'")
                depth = 0
        elif ch in "#%$":
            errors.append(f"unescaped {ch!r}")
        k += 1
    if depth:
        errors.append(f"{depth} unclosed '{{'")
    if len(re.findall(r"\\left(?![a-z])", latex)) != len(re.findall(r"\\right(?![a-z])", latex)):
        errors.append("\\left without \\right")
    begins, ends = re.findall(r"\\begin\{(\w+)\}", latex), re.findall(r"\\end\{(\w+)\}", latex)
    if begins != ends[::-1]:
        errors.append(f"environments {begins} closed as {ends}")
    if re.search(r"(?<!\\)\\\\[A-Za-z]", latex):  # `:\ ` cut to `:\` before `\qquad`: a line break
        errors.append("a row break '\\\\' glued to a word")
    for row in latex.split("\\\\"):
        if row.count("&") - row.count("\\&") > 3:
            errors.append("more than three '&' in a row")
    return errors


# ---------------------------------------------------------------------------------------------------
# Docstrings: where the equation blocks are

LIST_ITEM = re.compile(r"^(- |\* |\d+\. )")


@dataclass
class Segment:
    kind: str  # text, doctest, math, code, blank
    lines: list[str]
    first_line: int  # index into the docstring's lines


def split_docstring(lines: list[str]) -> list[Segment]:
    """A docstring (dedented, as `inspect.cleandoc` gives it) cut into prose, doctests and blocks.

    A block is a run of lines indented past the prose that is neither a doctest (`>>>`) nor the
    continuation of a list item (`- ` or `1. ` then lines indented to the item's text). It is an
    equation block (`math`) when `is_equation_block` says so, else `code` (set verbatim).
    """
    segments: list[Segment] = []
    item_indent = None  # the indentation of the current list item's continuation lines
    k = 0

    def add(kind: str, line: str, index: int) -> None:
        if segments and segments[-1].kind == kind and kind in ("text", "blank"):
            segments[-1].lines.append(line)
        else:
            segments.append(Segment(kind, [line], index))

    while k < len(lines):
        line = lines[k]
        indent = len(line) - len(line.lstrip())
        if not line.strip():
            add("blank", line, k)
            item_indent = None
            k += 1
        elif line.lstrip().startswith(">>>"):
            start = k
            while k < len(lines) and lines[k].strip():
                k += 1
            segments.append(Segment("doctest", lines[start:k], start))
        elif indent == 0:
            m = LIST_ITEM.match(line)
            item_indent = (
                len(m.group())
                if m
                else (
                    item_indent
                    if item_indent is not None and segments and segments[-1].kind == "text" and False
                    else None
                )
            )
            add("text", line, k)
            k += 1
        elif item_indent is not None and indent == item_indent:
            add("text", line, k)
            k += 1
        else:
            start = k
            while k < len(lines) and lines[k].strip() and (len(lines[k]) - len(lines[k].lstrip())) > 0:
                if lines[k].lstrip().startswith(">>>"):
                    break
                k += 1
            block = lines[start:k]
            segments.append(Segment("math" if is_equation_block(block) else "code", block, start))
    return segments
