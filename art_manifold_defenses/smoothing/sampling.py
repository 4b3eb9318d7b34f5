"""Streamed Monte-Carlo sampling of a smoothed classifier: Gaussian noise is drawn batch by batch on the
model's device, each noisy sample goes through exactly one forward pass, and only the per-class vote counts
are kept, so memory is one batch whatever the number of samples.

Per-image noise streams. With ``seeds`` (one per image), image ``i``'s ``sum(samples)`` noisy samples (phase 0
first, e.g. Cohen et al.'s ``n0`` selection samples, then phase 1, the ``n`` estimation samples) are drawn
from its own ``torch.Generator`` seeded with ``seeds[i]``, in consecutive ``normal_(0, sigma)`` calls of
``draw_size`` samples counted from the image's first sample (the last call of an image may be shorter). The
calls therefore never depend on where the image's samples fall in the batches, so an image's votes depend only
on its seed, ``samples``, ``sigma`` and ``draw_size``: not on the other images, their order, the batch size or
how a data set is split across calls or processes. :func:`image_seed` derives these seeds from one run seed
and the images' global indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "DRAW_ELEMENTS",
    "SEED_MULTIPLIER",
    "VoteStreams",
    "default_draw_size",
    "image_seed",
    "image_seeds",
    "make_generator",
    "resolve_seed",
    "vote_counts",
]

#: Odd 64-bit multiplier of :func:`image_seed` (``floor(2**64 / golden ratio)``, a Weyl step).
SEED_MULTIPLIER = 0x9E3779B97F4A7C15

#: Target number of noise values per ``normal_`` call (1 MiB of float32); see :func:`default_draw_size`.
DRAW_ELEMENTS = 2**18


def resolve_seed(seed: int | None) -> int:
    """``seed`` checked (a non-negative integer), or one drawn from torch's global RNG when ``seed`` is
    None."""
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return seed


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch generator on ``device``, seeded with ``seed`` (or from torch's global RNG when ``seed`` is
    None)."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(resolve_seed(seed))
    return gen


def image_seed(seed: int, index: int) -> int:
    """The noise seed of the image with global index ``index`` (e.g. its position in the test set) in a run
    seeded with ``seed``: ``(seed * SEED_MULTIPLIER + index) mod 2**63``,
    ``SEED_MULTIPLIER = 0x9E3779B97F4A7C15``.

    Properties (torch's CPU generator keeps only the low 32 bits of its seed, so they are stated for those
    bits): within one run seed, images whose indices differ by less than ``2**32`` get different streams; two
    run seeds ``s != s'`` less than 1,000 apart give image ``i`` of ``s`` and image ``j`` of ``s'`` the same
    stream only when ``|i - j| > 10**6`` (the golden-ratio step spreads the seeds' offsets over the 32-bit
    range).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    return (seed * SEED_MULTIPLIER + index) % 2**63


def image_seeds(seed: int, indices: Sequence[int]) -> list[int]:
    """:func:`image_seed` of every index."""
    return [image_seed(seed, int(i)) for i in indices]


def default_draw_size(sample_shape: Sequence[int]) -> int:
    """Samples per ``normal_`` call: about :data:`DRAW_ELEMENTS` values (at least one sample). It depends only
    on the shape of one sample, so the noise of an image does not depend on the batch size."""
    numel = 1
    for d in sample_shape:
        numel *= int(d)
    return max(1, DRAW_ELEMENTS // max(1, numel))


class _NoiseStream:
    """``N(0, sigma^2)`` samples of one image, ``draw_size`` per ``normal_`` call, handed out in pieces of any
    length.

    A call whose samples all fit the requested piece writes straight into it; the one call that straddles a
    batch boundary writes into ``staging`` and is handed out over two (or more) pieces."""

    def __init__(
        self, generator: torch.Generator, total: int, draw_size: int, staging: Tensor, sigma: float
    ) -> None:
        self.generator = generator
        self.sigma = sigma
        self.remaining = total  # samples not yet drawn
        self.draw_size = draw_size
        self.staging = staging
        self.pending: Tensor | None = None  # drawn, not yet handed out

    def fill(self, out: Tensor) -> None:
        pos, size = 0, out.shape[0]
        while pos < size:
            if self.pending is not None:
                k = min(self.pending.shape[0], size - pos)
                out[pos : pos + k].copy_(self.pending[:k])
                self.pending = self.pending[k:] if k < self.pending.shape[0] else None
                pos += k
                continue
            draw = min(self.draw_size, self.remaining)
            if draw <= 0:
                raise RuntimeError("noise stream exhausted: more samples requested than the image has")
            self.remaining -= draw
            if draw <= size - pos:
                out[pos : pos + draw].normal_(0.0, self.sigma, generator=self.generator)
                pos += draw
            else:
                self.pending = self.staging[:draw].normal_(0.0, self.sigma, generator=self.generator)

    def pause(self) -> None:
        """Keep the drawn-but-unused samples in memory of their own, so that ``staging`` can serve another
        stream."""
        if self.pending is not None:
            self.pending = self.pending.clone()


@torch.no_grad()
def vote_counts(
    classify: Callable[[Tensor], Tensor],
    x: Tensor,
    samples: Sequence[int],
    *,
    sigma: float,
    num_classes: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    draw_size: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Tensor:
    """Count the base classifier's argmax votes on ``x_i + N(0, sigma^2 I)`` for every image and phase.

    The ``N * sum(samples)`` noisy samples form one flat stream (image by image, phase by phase) cut into
    batches of ``batch_size``: a batch may hold samples of several images (small ``n``) or a part of one
    image's samples (large ``n``), so every batch but the last is full. Phase ``p`` of image ``i`` gets
    ``samples[p]`` fresh samples (e.g. Cohen et al.'s ``n0`` selection samples and ``n`` estimation samples).
    Every sample is a fresh, independent Gaussian draw.

    Args:
        classify: maps a batch of noisy inputs (on ``device``) to logits ``(B, num_classes)``.
        x: clean images ``(N, C, H, W)``, on any device (each is moved to ``device`` when its samples start).
        samples: number of noisy samples per image for each phase.
        sigma: noise standard deviation (noise is added in input space and not clipped, as in the papers).
        batch_size: noisy samples per forward pass.
        generator: one torch generator (on ``device``) for all images, drawn in stream order, so an image's
            noise depends on the images before it. Ignored when ``seeds`` is given.
        seeds: one seed per image (see :func:`image_seed`): image ``i``'s noise comes from its own generator
            seeded with ``seeds[i]`` and depends on nothing else (module docstring).
        device: where the noise is drawn and ``classify`` runs (default: ``x``'s device).
        draw_size: samples per ``normal_`` call (default :func:`default_draw_size`); part of the noise
            definition.
        progress: called with the number of images completed after each batch (e.g. ``tqdm.update``).

    Returns:
        int64 counts of shape ``(N, len(samples), num_classes)`` on ``device``.
    """
    phases = [int(s) for s in samples]
    if any(s < 0 for s in phases):
        raise ValueError(f"samples must be non-negative, got {list(samples)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    num_images, per_image = int(x.shape[0]), sum(phases)
    dev = x.device if device is None else torch.device(device)
    if seeds is not None and len(seeds) != num_images:
        raise ValueError(f"seeds must have one entry per image ({num_images}), got {len(seeds)}")
    draw = default_draw_size(x.shape[1:]) if draw_size is None else int(draw_size)
    if draw < 1:
        raise ValueError(f"draw_size must be a positive integer, got {draw_size!r}")
    counts = torch.zeros(num_images * len(phases) * num_classes, dtype=torch.int64, device=dev)
    if per_image == 0 or num_images == 0:
        return counts.view(num_images, len(phases), num_classes)
    if seeds is None and generator is None:
        generator = make_generator(None, dev)
    ends = [sum(phases[: p + 1]) for p in range(len(phases))]  # end of each phase within an image's samples
    total = num_images * per_image
    width = min(batch_size, total)
    buffer = torch.empty((width, *x.shape[1:]), device=dev, dtype=torch.float32)  # reused every batch
    staging = torch.empty((min(draw, per_image), *x.shape[1:]), device=dev, dtype=torch.float32)
    keys = torch.empty(width, dtype=torch.int64, device=dev)  # flat count slot of every sample of the batch
    ones = torch.ones(width, dtype=torch.int64, device=dev)
    image, offset = 0, 0  # the next sample to place: its image and its position among the image's samples
    stream: _NoiseStream | None = None
    clean: Tensor | None = None
    for start in range(0, total, batch_size):
        size = min(batch_size, total - start)
        batch = buffer[:size]
        pos = 0
        while pos < size:
            if stream is None:
                gen = generator if seeds is None else make_generator(int(seeds[image]), dev)
                assert gen is not None
                stream = _NoiseStream(gen, per_image, draw, staging, float(sigma))
                clean = x[image].to(device=dev, dtype=torch.float32)
            assert clean is not None
            take = min(size - pos, per_image - offset)
            piece = batch[pos : pos + take]
            stream.fill(piece)
            piece.add_(clean)
            for p, end in enumerate(ends):  # the count slot of each sample: (image, phase)
                lo, hi = max(offset, end - phases[p]), min(offset + take, end)
                if lo < hi:
                    keys[pos + lo - offset : pos + hi - offset].fill_((image * len(phases) + p) * num_classes)
            pos += take
            offset += take
            if offset == per_image:
                image, offset, stream, clean = image + 1, 0, None, None
        logits = classify(batch)
        if (
            logits.ndim != 2 or logits.shape[1] != num_classes
        ):  # argmax >= num_classes would count in another slot
            raise ValueError(
                f"num_classes={num_classes} does not match the classifier, which returns logits of shape "
                f"{tuple(logits.shape)} (expected (batch, {num_classes}))"
            )
        predicted = logits.argmax(dim=1)
        counts.index_add_(0, keys[:size] + predicted, ones[:size])
        if progress is not None:
            progress(image - (start // per_image))
    return counts.view(num_images, len(phases), num_classes)


class VoteStreams:
    """Vote counts of the same images drawn in several installments, each image continuing its own noise
    stream.

    The decision and adaptive modes of certification (:mod:`.sequential`, :mod:`.adaptive`) sample in rounds
    and stop each image at its own time. Image ``i``'s noise stream is exactly the one :func:`vote_counts`
    draws for it (a generator seeded with ``seeds[i]``, ``draw_size`` samples per ``normal_`` call counted
    from its first sample, the total ``per_image`` fixing the length of the last call), so its first ``m``
    samples are the same noise whether they are drawn at once or in installments, and the same as the first
    ``m`` samples of a fixed-``n`` run with ``n0 + n = per_image`` and the same seeds. Each call of
    :meth:`sample` cuts the requested samples (image by image) into batches of ``batch_size`` forward passes,
    as :func:`vote_counts` does.

    Memory: one batch, plus up to ``draw_size`` samples kept per image paused in the middle of a ``normal_``
    call.
    """

    def __init__(
        self,
        classify: Callable[[Tensor], Tensor],
        x: Tensor,
        *,
        sigma: float,
        num_classes: int,
        batch_size: int,
        seeds: Sequence[int],
        per_image: int,
        device: torch.device | str | None = None,
        draw_size: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(seeds) != int(x.shape[0]):
            raise ValueError(f"seeds must have one entry per image ({int(x.shape[0])}), got {len(seeds)}")
        if isinstance(per_image, bool) or not isinstance(per_image, int) or per_image < 1:
            raise ValueError(f"per_image must be a positive integer, got {per_image!r}")
        self.classify = classify
        self.x = x
        self.sigma = float(sigma)
        self.num_classes = int(num_classes)
        self.batch_size = batch_size
        self.seeds = [int(s) for s in seeds]
        self.per_image = per_image
        self.device = x.device if device is None else torch.device(device)
        self.draw = default_draw_size(x.shape[1:]) if draw_size is None else int(draw_size)
        if self.draw < 1:
            raise ValueError(f"draw_size must be a positive integer, got {draw_size!r}")
        self.drawn = [0] * int(x.shape[0])
        self._streams: dict[int, _NoiseStream] = {}
        self._buffer: Tensor | None = None
        self._staging = torch.empty(
            (min(self.draw, per_image), *x.shape[1:]), device=self.device, dtype=torch.float32
        )

    def _stream(self, image: int) -> _NoiseStream:
        if image not in self._streams:
            gen = make_generator(self.seeds[image], self.device)
            self._streams[image] = _NoiseStream(gen, self.per_image, self.draw, self._staging, self.sigma)
        return self._streams[image]

    def release(self, images: Sequence[int]) -> None:
        """Forget the streams of images that will draw no more samples (frees their kept samples)."""
        for image in images:
            self._streams.pop(int(image), None)

    @torch.no_grad()
    def sample(self, images: Sequence[int], counts: Sequence[int]) -> Tensor:
        """Votes ``(len(images), num_classes)`` (int64, on the device) of ``counts[j]`` further samples of
        image ``images[j]`` (row ``j``); an image may not draw more than ``per_image`` samples in all."""
        todo = [(int(i), int(c)) for i, c in zip(images, counts, strict=True)]
        out = torch.zeros(len(todo) * self.num_classes, dtype=torch.int64, device=self.device)
        for i, c in todo:
            if c < 0 or self.drawn[i] + c > self.per_image:
                raise ValueError(
                    f"image {i} would draw {self.drawn[i] + c} samples, more than per_image={self.per_image}"
                )
        total = sum(c for _, c in todo)
        if total == 0:
            return out.view(len(todo), self.num_classes)
        width = min(self.batch_size, total)
        if self._buffer is None or self._buffer.shape[0] < width:
            self._buffer = torch.empty((width, *self.x.shape[1:]), device=self.device, dtype=torch.float32)
        keys = torch.empty(width, dtype=torch.int64, device=self.device)
        ones = torch.ones(width, dtype=torch.int64, device=self.device)
        row, offset = (
            0,
            0,
        )  # the next sample to place: its row in ``todo`` and its position among that row's samples
        clean: Tensor | None = None
        for start in range(0, total, self.batch_size):
            size = min(self.batch_size, total - start)
            batch = self._buffer[:size]
            pos = 0
            while pos < size:
                while todo[row][1] == 0:
                    row += 1
                image, count = todo[row]
                if offset == 0:
                    clean = self.x[image].to(device=self.device, dtype=torch.float32)
                assert clean is not None
                stream = self._stream(image)
                take = min(size - pos, count - offset)
                piece = batch[pos : pos + take]
                stream.fill(piece)
                piece.add_(clean)
                keys[pos : pos + take].fill_(row * self.num_classes)
                pos += take
                offset += take
                if offset == count:
                    stream.pause()
                    row, offset = row + 1, 0
            logits = self.classify(batch)
            if logits.ndim != 2 or logits.shape[1] != self.num_classes:
                raise ValueError(
                    f"num_classes={self.num_classes} does not match the classifier, which returns logits "
                    f"of shape {tuple(logits.shape)} (expected (batch, {self.num_classes}))"
                )
            out.index_add_(0, keys[:size] + logits.argmax(dim=1), ones[:size])
        for i, c in todo:
            self.drawn[i] += c
        return out.view(len(todo), self.num_classes)
