"""The house rules of docs/design.md, checked on the source: imports run one way, no import hides
in a function, the code cites no document outside the repository."""

import ast
import pathlib

from conftest import REPO

PACKAGE = REPO / "hsi_jax"
# docs/design.md, "Layers": each module may import its own layer and those before it; the leaf
# helpers import only each other.
LEAVES = {"hsi_jax.fileutil", "hsi_jax.plots", "hsi_jax.parallel", "hsi_jax.config_util",
          "hsi_jax.evaluate", "hsi_jax.errors", "hsi_jax.cli", "hsi_jax.compile_cache",
          "hsi_jax.preemption"}
LAYERS = ["hsi_jax.data", "hsi_jax.models", "hsi_jax.train", ("hsi_jax.bundle", "hsi_jax.inference"),
          "hsi_jax.families",
          ("hsi_jax.run", "hsi_jax.loop", "hsi_jax.workdir", "hsi_jax.seeds", "hsi_jax.validate",
           "hsi_jax.checkpoint", "hsi_jax.predict"), ("hsi_jax.sweep", "hsi_jax.benchmark")]


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
  """(imported hsi_jax module, inside a function?) for every import in the file."""
  tree = ast.parse(path.read_text())
  nested = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef,
                                                                 ast.AsyncFunctionDef))
            for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
    else:
      continue
    for name in names:
      if name.startswith("hsi_jax"):
        yield name, id(node) in nested


def _rank(module: str):
  """None for a leaf helper (or the package itself), else the index of its layer."""
  if module == "hsi_jax":
    return None
  for leaf in LEAVES:
    if module == leaf or module.startswith(leaf + "."):
      return None
  for index, layer in enumerate(LAYERS):
    for prefix in (layer if isinstance(layer, tuple) else (layer,)):
      if module == prefix or module.startswith(prefix + "."):
        return index
  raise AssertionError(f"{module} is in no layer of docs/design.md")


def _graph():
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  edges = {}
  for name, path in modules.items():
    targets = set()
    for imported, _ in _imports(path):
      # 'from hsi_jax.data import io' names the module hsi_jax.data.io: keep the longest module.
      while imported not in modules and "." in imported:
        imported = imported.rsplit(".", 1)[0]
      if imported in modules and imported != name:
        targets.add(imported)
    edges[name] = targets
  return edges


def test_imports_run_one_way():
  wrong = []
  for module, targets in _graph().items():
    for target in targets:
      source_rank, target_rank = _rank(module), _rank(target)
      if source_rank is None and target_rank is not None:
        wrong.append(f"leaf {module} imports {target}")
      elif source_rank is not None and target_rank is not None and target_rank > source_rank:
        wrong.append(f"{module} imports {target} from a later layer")
  assert not wrong, wrong


def test_no_import_cycle_and_none_inside_functions():
  edges = _graph()
  # Package __init__ files import their submodules; a submodule importing a sibling through the
  # package is not a cycle of code, so the package nodes are dropped.
  packages = {m for m in edges if (PACKAGE / pathlib.Path(*m.split(".")[1:]) / "__init__.py")
              .exists() or m == "hsi_jax"}
  state = {}

  def visit(node, stack):
    state[node] = "open"
    for target in edges[node] - packages:
      if state.get(target) == "open":
        raise AssertionError(" -> ".join(stack + [node, target]))
      if target not in state:
        visit(target, stack + [node])
    state[node] = "done"

  for node in set(edges) - packages:
    if node not in state:
      visit(node, [])
  nested = [(str(path.relative_to(REPO)), name) for path in PACKAGE.rglob("*.py")
            for name, inside in _imports(path) if inside]
  assert not nested, nested


def test_the_code_cites_no_document_outside_the_repository():
  cited = []
  for folder in ("hsi_jax", "configs", "launch", "tests"):
    for path in (REPO / folder).rglob("*.py"):
      if path.name == pathlib.Path(__file__).name:  # this file names the markers
        continue
      text = path.read_text()
      for marker in ("PAPERS.md", "DESIGN.md", "../shared/docs"):
        if marker in text:
          cited.append(f"{path.relative_to(REPO)}: {marker}")
  assert not cited, cited
  for name in ("decisions.md", "design.md"):
    assert (REPO / "docs" / name).is_file()
