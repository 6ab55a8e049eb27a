"""An example plugin method: AdaIN on relu3_1 with a learnt decoder (the README's recipe; the tests install it)."""
import torch
import torch.nn.functional as F
from torch import nn

from methods import StyleTransferNet, TrainingRecipe, WeightFile, register_method
from methods.losses import style_statistics_loss, weighted_total
from methods.net import run_with_crops
from methods.ops import adain
from methods.vgg import feature_size


class MyNet(StyleTransferNet):
    taps = ("relu3_1",)                # the VGG-19 taps the network reads: relu1_1 … relu5_1
    min_content_side = 5               # smaller inputs are refused with one clear line
    min_style_side = 5

    def __init__(self, strength: float = 1.0):
        super().__init__()             # builds the frozen VGG encoder (self.encoder)
        self.strength = strength
        self.decoder = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(256, 128, 3), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.ReflectionPad2d(1), nn.Conv2d(128, 64, 3), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3),
        )

    def transfer(self, content, style):    # VGG features → decoder inputs, keyed by the tap of their resolution
        c = content["relu3_1"]
        return {"relu3_1": c + self.strength * (adain(c, style["relu3_1"]) - c)}

    def decode(self, features, size):      # decoder inputs → image (B, 3, *size), unclamped
        sizes = [[feature_size(s, tap) for s in size] for tap in ("relu2_1", "relu1_1")]
        return run_with_crops(self.decoder, features["relu3_1"], sizes)

    def reset_random(self, generator):     # seeded untrained weights (init="random", and the start of training)
        with torch.no_grad():
            for m in self.decoder.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.normal_(0.0, 0.02, generator=generator)
                    m.bias.zero_()

    def training_loss(self, content, style, weights):   # unweighted terms + "loss" (only to be trainable)
        with torch.no_grad():
            taps = ("relu1_1", "relu2_1", "relu3_1")
            fc, fs = self.encoder(content, taps), self.encoder(style, taps)
            target = adain(fc["relu3_1"], fs["relu3_1"])
        out = self.decode({"relu3_1": target}, content.shape[-2:])
        fo = self.encoder(out, taps)
        terms = {"content": F.mse_loss(fo["relu3_1"], target), "style": style_statistics_loss(fo, fs, taps)}
        return weighted_total(terms, weights)


@register_method(
    "my-method",
    paper="Me et al., An example, 2026",
    summary="AdaIN on relu3_1 with a three-conv decoder",
    encoder_layers=("relu3_1",),       # shown by `harness methods`
    default_size=256,                  # the side the method's own test protocol uses
    weights={"decoder": WeightFile("my_decoder.pth", url="https://example.org/my_decoder.pth")},
    recipe=TrainingRecipe(source="this example", lr=1e-4, epochs=None, steps=1000, schedule="constant",
                          loss_weights={"content": 1.0, "style": 10.0}),
)
def my_method(*, strength: float = 1.0):   # keyword options: --option strength=0.5, create_method(..., strength=0.5)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return MyNet(strength)
