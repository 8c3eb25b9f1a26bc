"""The house's size limits: short functions, short signatures, small files (a ratchet).

New code meets the limits; the few places that do not yet are listed with their size today, and
may only shrink (a test fails when one grows, and when one meets the limit and can leave the
list).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "fewzero"
MAX_FUNCTION_LINES = 60  # lines of code: no blank line, comment or docstring
MAX_PARAMETERS = 12  # self and cls not counted
MAX_FILE_LINES = 500

# what is over a limit today, at most this size: bring each one down, then delete its line
FUNCTIONS_OVER: dict[str, int] = {}
SIGNATURES_OVER: dict[str, int] = {}
FILES_OVER: dict[str, int] = {}


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    body = node.body
    start = body[0].lineno
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            start = first.end_lineno + 1
    code = lines[start - 1 : node.end_lineno]
    return sum(1 for line in code if line.strip() and not line.strip().startswith("#"))


def _measure() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    functions: dict[str, int] = {}
    signatures: dict[str, int] = {}
    files: dict[str, int] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        lines = text.splitlines()
        files[rel] = len(lines)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{rel}:{node.name}"
                functions[key] = max(functions.get(key, 0), _code_lines(node, lines))
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                n = len([x for x in names if x not in ("self", "cls")])
                signatures[key] = max(signatures.get(key, 0), n)
    return functions, signatures, files


def _check(measured: dict[str, int], limit: int, allowed: dict[str, int], what: str) -> None:
    over = {k: v for k, v in measured.items() if v > limit}
    new = {k: v for k, v in over.items() if k not in allowed}
    grown = {k: (allowed[k], v) for k, v in over.items() if k in allowed and v > allowed[k]}
    done = sorted(k for k in allowed if measured.get(k, 0) <= limit)
    assert not new, f"{what} over {limit}: {new}; split them"
    assert not grown, f"{what} grew past their listed size (listed, now): {grown}"
    assert not done, f"{done} now meet the limit of {limit} {what}: delete their lines above"


def test_functions_signatures_and_files_stay_within_the_limits():
    functions, signatures, files = _measure()
    _check(functions, MAX_FUNCTION_LINES, FUNCTIONS_OVER, "lines of code in a function")
    _check(signatures, MAX_PARAMETERS, SIGNATURES_OVER, "parameters")
    _check(files, MAX_FILE_LINES, FILES_OVER, "lines in a file")
