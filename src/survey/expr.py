"""Row conditions as data: a small expression language, parsed and evaluated by the project.

Specs select rows with conditions (``respondents: "WGTHHCY > 0"``, exclusion rules, the NCVS
series rule) and :meth:`Design.subset` takes one.  Specs are shared between offices, so a
condition must never run code: it is parsed with :func:`ast.parse` into a tree whose every node
is checked against the grammar below, then evaluated by walking that tree over the columns.
Nothing is passed to ``eval``, pandas ``eval``/``query`` or ``getattr``.

Grammar (Python syntax; pandas' ``&``, ``|`` and ``~`` are accepted as ``and``, ``or``, ``not``):

==========================  ===================================================================
names                       column names (letters, digits, ``_``; or quoted in backticks)
constants                   numbers, strings in quotes, ``True``, ``False``
comparisons                 ``==  !=  <  <=  >  >=``, chained (``1 <= month <= 12``)
membership                  ``x in [1, 2]``, ``x not in (8, 9)`` (a list or tuple of constants)
logic                       ``and``, ``or``, ``not`` (and ``&``, ``|``, ``~``)
arithmetic                  ``+  -  *  /  //  %`` and unary minus
missing values              ``isna(x)``, ``notna(x)``
==========================  ===================================================================

Missing values follow pandas: a comparison with a missing value is false, ``not in`` is true;
a condition that is missing for a row selects it not.  Anything else (attribute access,
subscripts, calls other than ``isna``/``notna``, lambdas, comprehensions, ``**``...) is refused
with its position, as is an expression longer than :data:`MAX_LENGTH` characters or with more
than :data:`MAX_NODES` nodes.
"""

from __future__ import annotations

import ast
import re

import numpy as np
import pandas as pd

from .errors import SurveyError

MAX_LENGTH = 2000
MAX_NODES = 400

_CMP = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
        ast.Gt: np.greater, ast.GtE: np.greater_equal}
_ARITH = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
          ast.FloorDiv: np.floor_divide, ast.Mod: np.mod}
_FUNCS = ("isna", "notna")
_BACKTICK = re.compile(r"`([^`]+)`")


class ExpressionError(SurveyError, ValueError):
    """A condition is not in the expression language, or cannot be evaluated on the data."""


class Expression:
    """A parsed, checked condition; ``names`` are the columns it reads."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ExpressionError(f"a condition must be text, not {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"condition is {len(text)} characters long (at most {MAX_LENGTH})")
        self.text = text
        self._quoted: dict[str, str] = {}

        def quote(m):
            key = f"__q{len(self._quoted)}__"
            self._quoted[key] = m.group(1)
            return key

        source = _BACKTICK.sub(quote, text)
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as e:
            at = f" at column {e.offset}" if e.offset else ""
            raise ExpressionError(f"condition '{text}' is not valid{at}: {e.msg}") from None
        except (RecursionError, MemoryError, ValueError):
            raise ExpressionError(f"'{text[:80]}' is nested too deeply") from None
        nodes = list(ast.walk(tree))
        if len(nodes) > MAX_NODES:
            raise ExpressionError(f"condition has {len(nodes)} parts (at most {MAX_NODES})")
        self.names: set[str] = set()
        self._check(tree.body)
        self.tree = tree.body

    # -- checking -------------------------------------------------------------------------------
    def _refuse(self, node, what: str):
        col = getattr(node, "col_offset", None)
        at = f" at column {col + 1}" if col is not None else ""
        raise ExpressionError(f"'{self.text}': {what}{at} is not allowed in a condition (names, constants, "
                              "comparisons, in [...], and/or/not, + - * /, isna() and notna() only)")

    def _name(self, node: ast.Name) -> str:
        return self._quoted.get(node.id, node.id)

    def _check(self, node) -> None:
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd, ast.Invert)):
                self._refuse(node, type(node.op).__name__)
            self._check(node.operand)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, (*_ARITH, ast.BitAnd, ast.BitOr)):
                self._refuse(node, f"the operator {type(node.op).__name__}")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.Compare):
            self._check(node.left)
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.NotIn)):
                    if not isinstance(right, (ast.List, ast.Tuple)) or not all(
                            isinstance(e, ast.Constant) and isinstance(e.value, (int, float, str)) or
                            isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub) and
                            isinstance(e.operand, ast.Constant) for e in right.elts):
                        self._refuse(right, "'in' with anything but a list of constants")
                elif type(op) not in _CMP:
                    self._refuse(node, f"the comparison {type(op).__name__}")
                else:
                    self._check(right)
        elif isinstance(node, ast.Name):
            self.names.add(self._name(node))
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float, str, bool)):
                self._refuse(node, f"the constant {node.value!r}")
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS and len(node.args) == 1
                    and not node.keywords):
                self._refuse(node, "a call")
            self._check(node.args[0])
        else:
            self._refuse(node, {ast.Attribute: "attribute access", ast.Subscript: "a subscript",
                                ast.Lambda: "a lambda"}.get(type(node), type(node).__name__))

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, df: pd.DataFrame) -> np.ndarray:
        """The condition on every row of ``df``: a boolean array (missing = not selected)."""
        missing = sorted(n for n in self.names if n not in df.columns)
        if missing:
            from .errors import column_not_found

            raise column_not_found(missing[0], df.columns, "column of the condition", f"'{self.text}'")
        with np.errstate(all="ignore"):
            out = self._eval(self.tree, df)
        if np.ndim(out) == 0:
            out = np.full(len(df), out)
        out = np.asarray(out)
        if out.dtype == object:
            out = pd.Series(out).fillna(False).to_numpy()
        if out.dtype.kind == "f":
            out = np.where(np.isnan(out), 0.0, out)
        return out.astype(bool)

    def _values(self, name: str, df: pd.DataFrame) -> np.ndarray:
        s = df[name]
        if isinstance(s, pd.DataFrame):
            raise ExpressionError(f"'{self.text}': the file has {s.shape[1]} columns named '{name}'")
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            return s.to_numpy(dtype=float, na_value=np.nan)
        return s.to_numpy(dtype=object)

    def _eval(self, node, df):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._values(self._name(node), df)
        if isinstance(node, ast.BoolOp):
            vals = [_truth(self._eval(v, df)) for v in node.values]
            out = vals[0]
            for v in vals[1:]:
                out = (out & v) if isinstance(node.op, ast.And) else (out | v)
            return out
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, df)
            if isinstance(node.op, (ast.Not, ast.Invert)):
                return ~_truth(v)
            v = _number(v, self.text)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, df), self._eval(node.right, df)
            if isinstance(node.op, ast.BitAnd):
                return _truth(a) & _truth(b)
            if isinstance(node.op, ast.BitOr):
                return _truth(a) | _truth(b)
            return _ARITH[type(node.op)](_number(a, self.text), _number(b, self.text))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, df)
            out = None
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.NotIn)):
                    codes = [e.value if isinstance(e, ast.Constant) else -e.operand.value for e in right.elts]
                    hit = _isin(left, codes)
                    res = ~hit if isinstance(op, ast.NotIn) else hit
                    nxt = left
                else:
                    nxt = self._eval(right, df)
                    res = _compare(_CMP[type(op)], left, nxt)
                out = res if out is None else (out & res)
                left = nxt
            return out
        if isinstance(node, ast.Call):
            v = self._eval(node.args[0], df)
            na = pd.isna(v) if np.ndim(v) else np.asarray(pd.isna(v))
            return na if node.func.id == "isna" else ~na
        raise ExpressionError(f"'{self.text}': cannot evaluate {type(node).__name__}")  # checked before


def _truth(v) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind == "f":
        return np.where(np.isnan(a), False, a != 0)
    if a.dtype == object:
        return pd.Series(a).fillna(False).astype(bool).to_numpy()
    return a.astype(bool)


def _number(v, text):
    a = np.asarray(v)
    if a.dtype == object:
        num = pd.to_numeric(pd.Series(a.ravel()), errors="coerce").to_numpy(dtype=float)
        bad = pd.notna(pd.Series(a.ravel())).to_numpy() & np.isnan(num)
        if bad.any():
            raise ExpressionError(f"'{text}': arithmetic on text values ({int(bad.sum())} rows)")
        return num.reshape(a.shape)
    return a.astype(float) if a.dtype.kind in "biuf" else a


def _compare(fn, a, b) -> np.ndarray:
    an, bn = np.asarray(a), np.asarray(b)
    if an.dtype == object or bn.dtype == object or isinstance(a, str) or isinstance(b, str):
        sa = pd.Series(an.ravel() if an.ndim else [a])
        sb = pd.Series(bn.ravel() if bn.ndim else [b])
        num_a, num_b = pd.to_numeric(sa, errors="coerce"), pd.to_numeric(sb, errors="coerce")
        if (num_a.notna() | sa.isna()).all() and (num_b.notna() | sb.isna()).all():
            an, bn = num_a.to_numpy(dtype=float), num_b.to_numpy(dtype=float)
        else:  # text: compared as text; missing values compare false
            ok = sa.notna().to_numpy() & sb.notna().to_numpy()
            res = np.asarray(fn(sa.astype(str).to_numpy(), sb.astype(str).to_numpy()), dtype=bool)
            return (res | ~ok) if fn is np.not_equal else (res & ok)
        if an.size == 1:
            an = an[0]
        if bn.size == 1:
            bn = bn[0]
    res = fn(an, bn)
    missing = np.isnan(an) if np.ndim(an) else np.isnan(np.float64(an))
    missing = missing | (np.isnan(bn) if np.ndim(bn) else np.isnan(np.float64(bn)))
    if fn is np.not_equal:  # pandas: NaN != x is true
        return np.asarray(res | missing, dtype=bool)
    return np.asarray(res & ~missing, dtype=bool)


def _isin(values, codes) -> np.ndarray:
    a = np.asarray(values)
    num = pd.to_numeric(pd.Series(codes, dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    if a.dtype.kind in "biuf":
        return np.isin(a.astype(float), num)
    s = pd.Series(a.ravel())
    as_num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    text = s.astype(str).isin([str(c) for c in codes]).to_numpy() & s.notna().to_numpy()
    return np.isin(as_num, num) | text


def parse(text: str) -> Expression:
    """Parse and check a condition (an :class:`ExpressionError` names what is refused, and where)."""
    return Expression(text)


def evaluate(text: str, df: pd.DataFrame) -> np.ndarray:
    """Evaluate a condition on ``df`` (a boolean array, one value per row)."""
    return Expression(text).evaluate(df)
