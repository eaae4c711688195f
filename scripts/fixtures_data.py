#!/usr/bin/python3
"""Writes the torchvision parity fixtures for the data layer to tests/fixtures/data/.

Run with Debian's python3 (torch 1.13, torchvision 0.14):  /usr/bin/python3 scripts/fixtures_data.py
Every fixture is a .npy file (numpy.save, format 1.0): the input image `input_u8.npy` is uint8
HWC; the outputs are float32 CHW (tensor path, float images in [0, 1]) or uint8 HW (PIL path).
A list of the cases with their parameters goes to `cases.txt`, one case per line:
    <name> <op> <param> ...
which the C++ test (tests/test_data_parity.cpp) reads, so adding a case needs no C++ change.

One deliberate deviation: torchvision's tensor rgb_to_grayscale uses 0.2989 for red, the project
uses 0.299 (ITU-R 601, as PIL and cases.md B14). For contrast and saturation, which blend with
the gray image, this script swaps in the 0.299 weights; every other part of those ops is
torchvision's own code. The 8-bit grayscale fixture comes from PIL, which uses 0.299 already.
"""
import os

import numpy as np
import torch
import torchvision.transforms.functional as F
import torchvision.transforms.functional_tensor as F_t
from PIL import Image
from torchvision.transforms import InterpolationMode

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")


def gray_0299(img, num_output_channels=1):
    r, g, b = img.unbind(dim=-3)
    l_img = (0.299 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(dim=-3)
    if num_output_channels == 3:
        return l_img.expand(img.shape)
    return l_img


def make_input():
    rng = np.random.default_rng(20240611)
    img = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    img[0, 0] = (255, 255, 255)  # max == min: hue undefined
    img[0, 1] = (0, 0, 0)
    img[0, 2] = (90, 90, 90)
    img[0, 3] = (200, 200, 10)  # ties between the top channels
    img[0, 4] = (10, 200, 200)
    img[0, 5] = (200, 10, 200)
    img[0, 6] = (255, 0, 0)
    img[0, 7] = (0, 255, 0)
    img[0, 8] = (0, 0, 255)
    return img


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    u8 = make_input()
    np.save(os.path.join(OUT, "input_u8.npy"), u8)
    x = torch.from_numpy(u8).permute(2, 0, 1).float() / 255.0
    cases = []

    def save(name, tensor, *desc):
        np.save(os.path.join(OUT, name + ".npy"), tensor.contiguous().numpy().astype(np.float32))
        cases.append(" ".join([name] + [str(d) for d in desc]))

    for f in (0.6, 1.3):
        save(f"brightness_{f}", F.adjust_brightness(x, f), "brightness", f)
    F_t.rgb_to_grayscale = gray_0299
    for f in (0.5, 1.7):
        save(f"contrast_{f}", F.adjust_contrast(x, f), "contrast", f)
    for f in (0.0, 0.3, 1.8):
        save(f"saturation_{f}", F.adjust_saturation(x, f), "saturation", f)
    for f in (0.1, -0.27, 0.5, -0.5, 0.03):
        save(f"hue_{f}", F.adjust_hue(x, f), "hue", f)
    x1 = x[:1]
    save("contrast1ch_0.5", F.adjust_contrast(x1, 0.5), "contrast1ch", 0.5)

    bil = InterpolationMode.BILINEAR
    crop = F.resized_crop(x, 2, 3, 7, 9, [32, 32], bil, antialias=False)
    save("crop_up_32", crop, "crop", 2, 3, 7, 9, 32, 32, 0)
    save("crop_up_32_flip", F.hflip(crop), "crop", 2, 3, 7, 9, 32, 32, 1)
    save("crop_up_20x24", F.resized_crop(x, 1, 0, 11, 16, [20, 24], bil, antialias=False),
         "crop", 1, 0, 11, 16, 20, 24, 0)
    save("resize_down_5x7", F.resize(x, [5, 7], bil, antialias=True),
         "crop", 0, 0, 12, 16, 5, 7, 0)
    save("crop_down_4x6", F.resized_crop(x, 1, 2, 10, 13, [4, 6], bil, antialias=True),
         "crop", 1, 2, 10, 13, 4, 6, 0)
    save("crop_mixed_6x20", F.resized_crop(x, 0, 1, 12, 15, [6, 20], bil, antialias=True),
         "crop", 0, 1, 12, 15, 6, 20, 0)

    for k, s in ((5, 0.8), (3, 1.7), (7, 2.0)):
        save(f"blur_{k}_{s}", F.gaussian_blur(x, [k, k], [s, s]), "blur", k, s)
    save("solarize_0.5", F.solarize(x, 0.5), "solarize", 0.5)
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    save("normalize_cifar", F.normalize(x, mean, std), "normalize", *mean, *std)

    gray = np.asarray(Image.fromarray(u8).convert("L"), dtype=np.uint8)
    np.save(os.path.join(OUT, "gray_pil_u8.npy"), gray)

    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(cases) + 2} fixtures to {os.path.normpath(OUT)} ({total} bytes)")


if __name__ == "__main__":
    main()
