"""The seconds-long run that every tiny test config shares: 6 iterations on 128x96 images."""


def shrink_run(dataloader, optimizer, lr_multiplier, train):
    """
    Shrink a shipped config's data, schedule and run settings in place for CPU tests.

    Args:
        dataloader, optimizer, lr_multiplier, train (DictConfig): the config's nodes.
    """
    dataloader.image_scale = [128, 96]  # (w, h)
    dataloader.train.total_batch_size = 2
    dataloader.train.num_workers = 0
    dataloader.test.num_workers = 0

    optimizer.lr = 1e-3
    # 6 iterations: 2 of warm-up, then x0.1 at 3 and x0.01 at 5, so the LR differs every step.
    lr_multiplier.scheduler.milestones = [3, 5]
    lr_multiplier.scheduler.num_updates = 6
    lr_multiplier.warmup_length = 2 / 6

    train.max_iter = 6
    train.eval_period = 3
    train.checkpointer.period = 3
    train.checkpointer.max_to_keep = 2
    train.log_period = 1
    train.device = "cpu"
    train.seed = 0
    train.init_checkpoint = ""
    train.allow_random_init = True
