"""Re-running the papers' tables and figures beside their published numbers: ``compactvideo reproduce``.

One module per paper holds its experiments and published numbers (:mod:`.araujo2018`,
:mod:`.cheng2015`, :mod:`.rasmussen2022`); small shared modules define experiments and options
(:mod:`.experiment`), GAP comparisons (:mod:`.gap`), training runs (:mod:`.runs`), the paper-scale plan
(:mod:`.plan`), results (:mod:`.results`), the report (:mod:`.report`) and figures (:mod:`.figures`);
:mod:`.runner` runs a reproduction into a folder.

    from compactvideo.reproduce import ReproduceOptions, reproduce
    rows = reproduce("araujo2018", "repro", ReproduceOptions(workers=2))
"""

from compactvideo.reproduce.experiment import DEMO_BUDGET, Experiment, ReproduceOptions
from compactvideo.reproduce.results import Row
from compactvideo.reproduce.runner import PAPERS, format_listing, reproduce

__all__ = ["DEMO_BUDGET", "PAPERS", "Experiment", "ReproduceOptions", "Row", "format_listing", "reproduce"]
