"""Start one training/evaluation process per device: detectron2's NCCL launch, or gloo on CPU."""

import logging
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as d2_launch
from detectron2.engine.launch import DEFAULT_TIMEOUT, _find_free_port
from detectron2.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch"]

logger = logging.getLogger(__name__)


def launch(
    main_func,
    num_procs_per_machine,
    num_machines=1,
    machine_rank=0,
    dist_url=None,
    args=(),
    timeout=DEFAULT_TIMEOUT,
):
    """
    detectron2's :func:`detectron2.engine.launch` (one process per GPU, NCCL) with CUDA, after
    checking ``--num-gpus`` against the devices. Without CUDA the same command line spawns CPU
    processes (``num_procs_per_machine``, at most one per core) joined by the gloo backend, so
    the distributed code path (DDP, gathered evaluation, rank-0-only writers) runs anywhere.
    ``dist_url`` "auto" (or None) picks a free local port (single machine only).
    """
    # v0.6 needs the CPU path below (its launch asserts CUDA); detectron2 main picks gloo itself.
    if torch.cuda.is_available():
        available = torch.cuda.device_count()
        if num_procs_per_machine > available:
            raise ValueError(
                f"--num-gpus {num_procs_per_machine}: this machine has {available} CUDA "
                f"device(s); pass --num-gpus {available} or fewer."
            )
        return d2_launch(
            main_func,
            num_procs_per_machine,
            num_machines=num_machines,
            machine_rank=machine_rank,
            dist_url=dist_url,
            args=args,
            timeout=timeout,
        )
    cores = os.cpu_count() or 1
    if num_procs_per_machine > cores:
        raise ValueError(
            f"--num-gpus {num_procs_per_machine}: no CUDA here, and gloo CPU processes need a core "
            f"each; this machine has {cores}. Pass --num-gpus {cores} or fewer."
        )
    world_size = num_procs_per_machine * num_machines
    if world_size == 1:
        return main_func(*args)
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url must be a tcp://host:port that every machine reaches")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    logger.info(f"No CUDA: {num_procs_per_machine} CPU process(es) joined by gloo at {dist_url}")
    try:
        mp.spawn(
            _gloo_worker,
            nprocs=num_procs_per_machine,
            args=(
                main_func,
                world_size,
                num_procs_per_machine,
                machine_rank,
                dist_url,
                args,
                timeout,
            ),
            daemon=False,
        )
    except mp.ProcessExitedException as e:  # it printed its own error (e.g. SystemExit's line)
        raise SystemExit(
            f"error: {e}; the other processes were stopped. Its error is above and in the "
            "log files (log.txt, log.txt.rankN) of train.output_dir."
        ) from e


def _gloo_worker(
    local_rank, main_func, world_size, num_procs_per_machine, machine_rank, dist_url, args, timeout
):
    global_rank = machine_rank * num_procs_per_machine + local_rank
    # Share the cores instead of letting every process start one thread per core.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_procs_per_machine))
    dist.init_process_group(
        backend="gloo",
        init_method=dist_url,
        world_size=world_size,
        rank=global_rank,
        timeout=timeout,
    )
    try:
        # detectron2.utils.comm answers get_local_rank()/get_local_size() from this group; every
        # rank must take part in creating every machine's group. v0.6 needs this; detectron2
        # main has comm.create_local_process_group.
        assert comm._LOCAL_PROCESS_GROUP is None
        for machine in range(world_size // num_procs_per_machine):
            first = machine * num_procs_per_machine
            group = dist.new_group(list(range(first, first + num_procs_per_machine)))
            if machine == machine_rank:
                comm._LOCAL_PROCESS_GROUP = group
        comm.synchronize()
        main_func(*args)
    finally:
        dist.destroy_process_group()
