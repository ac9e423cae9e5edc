"""``fewshotkit segment``: structures in a new scan from one labelled scan."""

from __future__ import annotations

from typing import Any

import click

from fewshotkit.cli.options import inference_options


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True), help="A run directory or .pt checkpoint.")
@click.option("--support", required=True, type=click.Path(exists=True),
              help="Labelled scan: NIfTI, NRRD or MetaImage file, or a folder of one DICOM series.")
@click.option("--support-label", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Its label map (same grid; codes 0..65535).")
@click.option("--class", "classes", multiple=True, metavar="NAME|VALUE|all",
              help="A structure to segment (repeatable; 'all': every class of the support label; default: the "
                   "label's only class). Several classes go into one label map with the support's values.")
@click.option("--query", required=True, type=click.Path(exists=True),
              help="Scan to segment: NIfTI, NRRD or MetaImage file, or a folder of one DICOM series.")
@click.option("--query-label", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The query's label map, to report Dice.")
@inference_options(scan=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--overlay", type=click.Path(dir_okay=False), default=None, help="Write a PNG montage here.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Prediction: .nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd, or .dcm (DICOM SEG of a DICOM query) "
                   "[default: beside the query, NAME_seg in its format; a DICOM query's as .nii.gz].")
@click.option("--frame", type=click.IntRange(min=0), default=None, help="The frame of 4D scans (0 = first).")
@click.option("--series", "series", multiple=True, metavar="UID",
              help="The DICOM series to read from a folder holding several (repeatable).")
@click.option("--force", is_flag=True, help="Replace an existing scan or label image at -o (never one of the inputs).")
def segment(checkpoint: str, support: str, support_label: str, classes: tuple[str, ...], query: str,
            query_label: str | None, inference: Any, device: str, overlay: str | None, output: str | None,
            frame: int | None, series: tuple[str, ...], force: bool) -> None:
    """Segment structures in a new scan from one labelled scan; the output keeps the query's geometry."""
    from fewshotkit.apps.segment import ScanFiles, segment_files
    from fewshotkit.core.console import console

    files = ScanFiles(support, support_label, query, query_label, frame=frame, series=series)
    result = segment_files(checkpoint, files, output, classes=list(classes) or None, options=inference,
                           device=device, overlay=overlay, force=force)
    support_codes, query_codes, codes = result.orientation
    moved = [f"{what} ({own})" for what, own in (("support", support_codes), ("query", query_codes)) if own != codes]
    changes = ([f"{' and '.join(moved)} segmented in {codes} orientation"] if moved else []) + (
        [result.frame] if result.frame else [])
    if changes:
        console.print("; ".join(changes) + "; the prediction written back on the query's grid")
    for item in result.classes:
        lo, hi = item.query_range
        name = f" ({item.name})" if item.name else ""
        console.print(f"class {item.value}{name}: support slices {item.support_slices}"
                      + ("" if result.support_slice_numbers else f" (of the support in {codes})")
                      + f", query slices {lo}..{hi}" + ("" if result.query_slice_numbers else f" (of the query in {codes})")
                      + (" (+ all others)" if inference.all_slices else ""))
    if result.support_turns:
        console.print(f"support turned {90 * result.support_turns} degrees counter-clockwise to match the query "
                      "(support_orientation=search)")
    if result.support_zoom is not None:
        console.print(f"segmented inside the support's box grown by {result.support_zoom:g} of the slice on each side "
                      "(support_zoom); outside it the query is background")
    if result.test_mirror:
        console.print("each prediction averaged with that of the left-right mirrored support and query (test_mirror)")
    if result.fg_threshold != 0.5:
        console.print(f"foreground where its softmax exceeds {result.fg_threshold:g} (fg_threshold)")
    if result.drop_absent is not None:
        console.print(f"slices whose predicted mass is below {result.drop_absent:g} of the scan's largest cleared "
                      "(drop_absent)")
    if len(result.classes) > 1:
        console.print("one forward pass per query chunk for all classes" if result.joint
                      else "one forward pass per class and query chunk")
    voxels = ", ".join(f"{c.value}: {int((result.prediction == c.value).sum())}" for c in result.classes)
    console.print(f"prediction: {result.output} (voxels per class {voxels})")
    for item in result.classes:
        if item.dice is not None:
            console.print(f"Dice of class {item.value} against {query_label}: {item.dice:.2f} %")
    if result.overlay is not None:
        console.print(f"overlay: {result.overlay}")
