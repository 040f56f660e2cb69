"""E-learning packages (SCORM 1.2 / 2004 zips or unpacked folders) read as courses.

- ``course.read_package(path, limits)``: the package's Course and its documents (one per item, one per
  caption file), or LoaderError when the whole package is refused;
- ``sync.plan_packages(library, ledger, full, limits)``: what to read this run (unchanged packages are not opened);
- ``archive``: hostile-archive checks and bounded reads; ``xmlsafe``: defusedxml parsing;
- ``scorm``: imsmanifest.xml and LOM; ``tools``: per-authoring-tool extractors; ``jsdata``: JS data literals.
"""
