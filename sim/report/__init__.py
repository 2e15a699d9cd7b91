"""Evaluation reports: tables over the results of several runs (:mod:`sim.report.summary`), reading run folders
(:mod:`sim.report.collect`), rollout animations (:mod:`sim.report.animation`) and the self-contained HTML page
(:mod:`sim.report.html`)."""
