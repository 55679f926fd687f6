"""Train a GAN on MNIST from the command line: one GPU, several (DDP), several nodes, or CPU processes.

    python examples/mnist_gan.py --devices 4                     # DCGAN on 4 GPUs ("gan_ddp")
    python examples/mnist_gan.py --accelerator cpu --devices 2   # DDP over 2 CPU processes
    python examples/mnist_gan.py --config examples/configs/mnist_dcgan.yaml
    python examples/mnist_gan.py --model WGANGP --model.n_critic 5
    python examples/mnist_gan.py --model ConditionalGAN          # one sample-grid row per digit
    python examples/mnist_gan.py --model my_package.MyGAN        # your own GAN subclass (takes `image_shape`)
    python examples/mnist_gan.py --logger wandb                  # Weights & Biases (offline without a key)
    python examples/mnist_gan.py --ckpt_path last                # resume the most recent run
    python examples/mnist_gan.py test --ckpt_path last           # test metrics of its last checkpoint

This file is all a project needs: the command line lives in the package (``lightning_gan.cli``, also the
``lightning-gan`` command), so the same flags work with your own model and data module. ``--help`` lists
them; the defaults are a DCGAN with a moving-average generator on MNIST, FID, Parzen likelihood and sample
grids every epoch, a DivergenceGuard, and checkpoints in the run's own ``lightning_logs/version_N``.
"""

from lightning_gan.cli import main

if __name__ == "__main__":
    main(prog="mnist_gan.py")
