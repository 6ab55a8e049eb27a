"""Studies: the paper's tables and figures as YAML files that one command runs, validates and resumes.

``python -m harness study studies/table1.yaml`` → ``results/table1/`` (or ``--out``). A study file is a mapping:

.. code-block:: yaml

    study: table1                 # name: [A-Za-z0-9_.-]+, the default results folder results/<name>
    kind: run                     # run | complexity | video
    title: "..."                  # one line, printed and written to the study manifest
    paper: "StyA2K (ICCV 2023) Table 1"
    description: >                # free text
      ...
    run:                          # kind run: the runner's settings (harness.run.RunConfig), see schema.RUN_KEYS
      content: [...]              # folders or files; strings may use ${VAR} and ${VAR:-default}
      size: 512
      metrics: [content_loss, style_loss, lpips, timing]
    methods:                      # kind run: the table's rows, in order
      - styA2K                    # a registered method name, or a mapping:
      - label: "λ2=0.5"           #   the row label (default: the method name)
        method: styA2K            #   the registered method
        options: {heads: 8}       #   method options (`methods --verbose` lists them)
        weights: checkpoints/x    #   a harness checkpoint or a folder of official files (loaded even under init random)
        train: {lambda_a2k: 0.5}  #   with train_missing: train the missing checkpoint with `training:` + these
        paper_label: StyA2K       #   the row of `reference` it corresponds to (default: the label)
    training: {...}               # TrainConfig fields shared by the entries' `train:` (content_dir, style_dir, steps, ...)
    figures: [comparison, bars]   # names, or a mapping name → parameters (see FIGURES)
    reference:                    # the paper's numbers, written beside ours (paper.md) and drawn on the bar charts
      columns: [content_loss, style_loss, lpips]
      rows: {StyA2K: [0.55, 1.04, 0.52]}
      note: "..."
    complexity: {...}             # kind complexity: harness.complexity.ComplexityConfig fields
    video: {...}                  # kind video: harness.video.VideoConfig fields

Every key is checked when the file is loaded, before any work: an unknown key, a wrong type, an unknown method,
option or figure is one :class:`StudyError` line naming the file and the key. Relative paths are relative to the
working folder (run studies from the repository root); ``${HARNESS_ASSETS:-../shared/assets}`` is how the bundled
studies find the shared test images. The settings of :class:`StudyOverrides` (``device``, ``init``, ``seed``,
``weights_dir``, ``download``, ``sizes``, ``max_memory_mib``; the command line's flags) override the file.

A study resumes: the runner skips pairs already in ``metrics.csv``, the complexity sweep skips measured cells, the
video study reuses written frames, training resumes from ``training_state.pt``; ``force`` recomputes.

Modules: :mod:`.model` (the dataclasses), :mod:`.schema` (reading and validating a file), :mod:`.figures` (the
figures a study can draw), :mod:`.running` (running a study).
"""
from __future__ import annotations

from ..config import expand_variables
from ..errors import StudyError
from .figures import FIGURES, FigureContext
from .model import Reference, Study, StudyEntry, StudyOverrides, StudySummary
from .running import (read_table, run_config_for, run_study, study_of_results, table_lookup, write_paper_comparison,
    write_study_figures)
from .schema import KINDS, RUN_KEYS, load_study_file

__all__ = [
    "FIGURES",
    "KINDS",
    "RUN_KEYS",
    "FigureContext",
    "Reference",
    "Study",
    "StudyEntry",
    "StudyError",
    "StudyOverrides",
    "StudySummary",
    "expand_variables",
    "load_study_file",
    "read_table",
    "run_config_for",
    "run_study",
    "study_of_results",
    "table_lookup",
    "write_paper_comparison",
    "write_study_figures",
]
