"""`python -m tgan_deploy.train ...` (and so `torchrun --nproc_per_node N -m tgan_deploy.train ...`)."""

from tgan_deploy.train.cli import main

if __name__ == "__main__":
    main(prog_name="tgan-train")
