"""A normal (non-editable) install carries every subpackage: `packages = ["tinyjax"]` once shipped a wheel without
tinyjax/examples, which an editable install hid. Builds the wheel as `pip install .` would and lists it."""
import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_wheel_holds_every_module(tmp_path):
  subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                 check=True, capture_output=True)
  wheel, = tmp_path.glob("tinyjax-*.whl")
  packaged = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
  sources = {str(p.relative_to(ROOT)) for p in (ROOT / "tinyjax").rglob("*.py")}
  assert sources <= packaged, sorted(sources - packaged)
