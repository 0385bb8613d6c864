"""A variational autoencoder on MNIST (Kingma and Welling, 2014).

Encoder 784-256 to a latent of 8 (mean and log-variance heads, reparameterized
sample); decoder 8-256-784 with a sigmoid. The loss is the negative ELBO per
pixel: binary cross-entropy of the reconstruction plus the KL term (weighted
1/784, since the cross-entropy is a mean over the 784 pixels). The decoder's
weights are shared, by name, with a second model that decodes samples of the
prior N(0, I). Writes out/vae_reconstructions.png and out/vae_samples.png.

    python examples/mnist_vae.py [path/to/mnist]
"""
from __future__ import annotations

import os
import sys

import numpy as np

from graphnn import Graph, Model, datasets, optim

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist")
LATENT, PIXELS = 8, 784


def decoder(g: Graph, z):
    """The decoder as explicit ops on named parameters, so two graphs can share them."""
    w1, b1 = g.param("dec/W1", (LATENT, 256)), g.param("dec/b1", (256,))
    w2, b2 = g.param("dec/W2", (256, PIXELS)), g.param("dec/b2", (PIXELS,))
    h = g.relu(g.op("bias_add", [g.op("matmul", [z, w1]), b1]))
    return g.sigmoid(g.op("bias_add", [g.op("matmul", [h, w2]), b2]), name="pixels_out")


def build_vae(seed=0):
    g = Graph()
    x = g.input("pixels", (None, PIXELS))
    h = g.dense(x, 256, activation="relu", name="enc")
    z = g.latent_sample(h, LATENT, beta=1.0 / PIXELS, name="latent")
    return Model(g, inputs=x, outputs=decoder(g, z), seed=seed)


def build_sampler():
    g = Graph()
    z = g.input("z", (None, LATENT))
    return Model(g, inputs=z, outputs=decoder(g, z))


def grid(images, rows, cols):
    return images[: rows * cols].reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)


def run(path=DEFAULT, epochs=15, seed=0, verbose=1, out="out"):
    (x_train, _), (x_test, _) = datasets.mnist_split(path)
    x_train, x_test = x_train.reshape(-1, PIXELS), x_test.reshape(-1, PIXELS)
    vae = build_vae(seed)
    vae.compile(loss="binary_cross_entropy", optimizer=optim.Adam(1e-3))
    vae.fit(x_train, x_train, epochs=epochs, batch_size=64, seed=seed, verbose=verbose)
    # loss = mean pixel cross-entropy + KL / 784, so -784 loss is the ELBO per image
    # (evaluation decodes the latent mean: the KL term is exact, the reconstruction
    # term is its value at the mean rather than an average over samples)
    elbo = -PIXELS * vae.evaluate(x_test, x_test)["loss"]
    sampler = build_sampler()
    sampler.set_weights({k: v for k, v in vae.get_weights().items() if k.startswith("dec/")})
    samples = sampler.predict(np.random.default_rng(seed).normal(size=(64, LATENT)))
    result = {"elbo": elbo, "files": []}
    try:
        import matplotlib.pyplot as plt
        os.makedirs(out, exist_ok=True)
        recon = vae.predict(x_test[:32])
        pairs = np.concatenate([grid(x_test[:32], 4, 8), grid(recon, 4, 8)], axis=0)
        for name, image, title in (("vae_reconstructions.png", pairs, "test images (top), reconstructions"),
                                   ("vae_samples.png", grid(samples, 8, 8), "samples from N(0, I)")):
            fig, ax = plt.subplots(figsize=(6, 6 * image.shape[0] / image.shape[1]))
            ax.imshow(image, cmap="gray")
            ax.set_title(title)
            ax.axis("off")
            fig.savefig(os.path.join(out, name), dpi=100, bbox_inches="tight")
            plt.close(fig)
            result["files"].append(os.path.join(out, name))
    except ImportError as e:
        print(f"(no pictures: {e})")
    return result


if __name__ == "__main__":
    r = run(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(f"test ELBO: {r['elbo']:.1f} nats per image; wrote {', '.join(r['files'])}")
