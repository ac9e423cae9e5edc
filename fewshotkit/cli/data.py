"""``fewshotkit ingest`` and ``pseudolabel``: building slice stores (``store`` inspects them).

No torch imports here: these commands start fast.
"""

from __future__ import annotations

import click

from fewshotkit.core.stop import terminate_cleanly  # SIGTERM -> KeyboardInterrupt: no partial store stays

OUT_OPTION = click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
                          help="The store to write (HDF5); written atomically.")
LIMIT_OPTION = click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N volumes.")
FORCE_OPTION = click.option("--force", is_flag=True,
                            help="Replace an existing store at -o (its pseudolabel sets are lost).")


def guard_store_output(output: str, src: str | None, force: bool) -> None:
    """Refuse an -o that is a source file, a folder or a file of another kind (a NIfTI, a checkpoint)."""
    from fewshotkit.core.outputs import STORE, Output, check_outputs

    check_outputs([Output(output, "-o", STORE)], {"SRC": src}, force=force)


@click.group()
def ingest() -> None:
    """Turn scans into a slice store (one HDF5 file per dataset); see docs/store-format.md."""


@ingest.command("chaos-t2")
@click.argument("src", type=click.Path())
@OUT_OPTION
@click.option("--clip", "clip_mode", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Clip above the 99.5th percentile: auto skips volumes that already look clipped.")
@LIMIT_OPTION
@FORCE_OPTION
def ingest_chaos(src: str, output: str, clip_mode: str, limit: int | None, force: bool) -> None:
    """CHAOS T2-SPIR, preprocessed layout: SRC/image_N.nii.gz + label_N.nii.gz.

    Labels 1 liver, 2 right kidney, 3 left kidney, 4 spleen; 256 x 256 (centre crop/pad); the
    model input is a per-volume z-score. Second clip: the common preprocessed copy already looks
    clipped (~0.2 % of voxels exactly at each volume's maximum), so by default (--clip auto) a
    volume is clipped at its 99.5th percentile only if it does not already look clipped; the
    choice is recorded per volume. --clip always clips again, --clip never does not clip.
    """
    from fewshotkit.data.ingest.chaos import ingest_chaos_t2

    terminate_cleanly()
    guard_store_output(output, src, force)
    ingest_chaos_t2(src, output, clip_mode=clip_mode, limit=limit, overwrite=force)


@ingest.command("ms-cmrseg")
@click.argument("src", type=click.Path())
@OUT_OPTION
@LIMIT_OPTION
@FORCE_OPTION
def ingest_ms_cmrseg(src: str, output: str, limit: int | None, force: bool) -> None:
    """MS-CMRSeg bSSFP: SRC/image_N.nii.gz + label_N.nii.gz; codes 200/500/600 -> LV-MYO/LV-BP/RV,
    top 0.5 % clipped, centre crop or pad to 256 x 256, per-volume z-score."""
    from fewshotkit.data.ingest.ms_cmrseg import ingest_ms_cmrseg as run

    terminate_cleanly()
    guard_store_output(output, src, force)
    run(src, output, limit=limit, overwrite=force)


@ingest.command("acdc")
@click.argument("src", type=click.Path())
@OUT_OPTION
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True, help="In-plane size.")
@LIMIT_OPTION
@FORCE_OPTION
def ingest_acdc(src: str, output: str, size: int, limit: int | None, force: bool) -> None:
    """ACDC per-volume HDF5 files (SRC/patientNNN_frameNN.h5): resized to SIZE x SIZE (images
    linear, labels nearest); labels 1 RV, 2 LV-MYO, 3 LV-BP; per-volume z-score."""
    from fewshotkit.data.ingest.acdc import ingest_acdc as run

    terminate_cleanly()
    guard_store_output(output, src, force)
    run(src, output, target_size=size, limit=limit, overwrite=force)


@ingest.command("synapse-ct")
@click.argument("src", type=click.Path())
@OUT_OPTION
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True, help="In-plane size.")
@LIMIT_OPTION
@FORCE_OPTION
def ingest_synapse(src: str, output: str, size: int, limit: int | None, force: bool) -> None:
    """Raw Synapse/BTCV CT (img/imgNNNN.nii.gz, label/labelNNNN.nii.gz): window [-125, 275] HU to
    0..255, crop a 32 px border, resize to SIZE; z-score with the training fold's global statistics."""
    from fewshotkit.data.ingest.synapse import ingest_synapse_ct

    terminate_cleanly()
    guard_store_output(output, src, force)
    ingest_synapse_ct(src, output, size=size, limit=limit, overwrite=force)


@ingest.command("nifti")
@click.argument("src", type=click.Path())
@OUT_OPTION
@click.option("--labels", "labels", required=True,
              help="Label codes (1..65535) and names, e.g. 1=liver,2=spleen or 200=LV-MYO,500=LV-BP,600=RV.")
@click.option("--image-glob", default="image_*.nii.gz", show_default=True,
              help="Image files (NIfTI, NRRD, MetaImage) or DICOM series folders; '*' is the scan id.")
@click.option("--label-glob", default="label_*.nii.gz", show_default=True, help="Label files; '*' is the scan id.")
@click.option("--size", type=click.IntRange(min=16), default=None, help="Make slices SIZE x SIZE (default: keep).")
@click.option("--resize", is_flag=True, help="With --size: resize instead of centre crop/pad.")
@click.option("--modality", type=click.Choice(["MR", "CT"], case_sensitive=False), default="MR", show_default=True,
              help="MR or CT (recorded; either case).")
@click.option("--clip", "clip_mode", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Clip above the 99.5th percentile (auto: unless already clipped).")
@click.option("--orientation", default=None, metavar="CODES",
              help="Store every scan in these axis codes (e.g. RAS) when the files mix orientations; "
                   "predictions still go back on each file's own grid. Default: as each file stores it.")
@click.option("--frame", type=click.IntRange(min=0), default=None, help="The frame of 4D scans (0 = first).")
@LIMIT_OPTION
@FORCE_OPTION
def ingest_nifti_command(src: str, output: str, labels: str, image_glob: str, label_glob: str, size: int | None,
                         resize: bool, modality: str, clip_mode: str, orientation: str | None, frame: int | None,
                         limit: int | None, force: bool) -> None:
    """Your own image/label pairs in SRC (NIfTI, NRRD, MetaImage files or DICOM series folders), paired by
    the '*' part of the two patterns."""
    from fewshotkit.data.ingest.nifti import ingest_nifti, parse_label_spec

    terminate_cleanly()
    guard_store_output(output, src, force)
    ingest_nifti(src, output, labels=parse_label_spec(labels), image_glob=image_glob, label_glob=label_glob,
                 modality=modality.upper(), target_size=size, resize=resize, clip_mode=clip_mode, limit=limit,
                 overwrite=force, orientation=orientation, frame=frame)


@ingest.command("msd")
@click.argument("src", type=click.Path())
@OUT_OPTION
@click.option("--size", type=click.IntRange(min=16), default=None, help="Make slices SIZE x SIZE (default: keep).")
@click.option("--resize", is_flag=True, help="With --size: resize instead of centre crop/pad.")
@click.option("--clip", "clip_mode", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Clip above the 99.5th percentile (auto: unless already clipped).")
@LIMIT_OPTION
@FORCE_OPTION
def ingest_msd_command(src: str, output: str, size: int | None, resize: bool, clip_mode: str, limit: int | None,
                       force: bool) -> None:
    """A Medical Segmentation Decathlon / nnU-Net raw dataset: SRC/dataset.json (class names from its
    'labels'), SRC/imagesTr/CASE_0000.nii.gz (or CASE.nii.gz) and SRC/labelsTr/CASE.nii.gz; one channel."""
    from fewshotkit.data.ingest.msd import ingest_msd

    terminate_cleanly()
    guard_store_output(output, src, force)
    ingest_msd(src, output, target_size=size, resize=resize, clip_mode=clip_mode, limit=limit, overwrite=force)


@ingest.command("synthetic")
@OUT_OPTION
@click.option("--volumes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--slices", type=click.IntRange(min=4), default=24, show_default=True)
@click.option("--size", type=click.IntRange(min=32), default=128, show_default=True)
@FORCE_OPTION
def ingest_synthetic_command(output: str, volumes: int, seed: int, slices: int, size: int, force: bool) -> None:
    """Abdomen-like 3D phantoms (liver, kidneys, spleen), deterministic by --seed; no data needed."""
    from fewshotkit.data.ingest.synthetic import ingest_synthetic

    terminate_cleanly()
    guard_store_output(output, None, force)
    ingest_synthetic(output, volumes=volumes, seed=seed, slices=slices, size=size, overwrite=force)


@click.command()
@click.argument("store_path", metavar="STORE", type=click.Path())
@click.option("--with", "name", required=True, help="Pseudolabeler name (see `fewshotkit components pseudolabeler`).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Pseudolabeler option (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores).")
@click.option("--force", is_flag=True, help="Recompute even if a set with these parameters exists.")
def pseudolabel(store_path: str, name: str, settings: tuple[str, ...], jobs: int | None, force: bool) -> None:
    """Run a pseudolabeler over every slice (or volume) of STORE and store the result as a named set."""
    from fewshotkit.core.console import console
    from fewshotkit.data.pseudolabel import parse_set_options, run_pseudolabeler

    terminate_cleanly()
    result = run_pseudolabeler(store_path, name, parse_set_options(settings), jobs=jobs, force=force)
    if result.computed:
        console.print(f"wrote pseudolabel set [bold]{result.set_name}[/bold] to {store_path} in "
                      f"{result.seconds:.1f} s ({result.segments_per_slice:.1f} segments per slice)")
    else:
        console.print(f"pseudolabel set [bold]{result.set_name}[/bold] already exists in {store_path}; "
                      "nothing to do (--force recomputes it)")
