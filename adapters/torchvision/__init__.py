"""torchvision (and PIL) adapter: image files, dataset files and downloads, models."""
