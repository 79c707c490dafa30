#!/usr/bin/env python3
"""How many E4M3 parts q needs for q·Kᵀ on E4M3 tensor cores (a design estimate, pure Python, no GPU).

q (head_dim 128, N(0, 1)) is scaled by a power of two so its largest |element| lies in [128, 256), then split into
parts, each the E4M3 rounding of what the earlier parts left; K is N(0, 1) stored as E4M3 codes times a scale. The
score from the parts (summed exactly, as if the tensor core's sums lost nothing) is compared with q·K in float64,
relative to |q|·|K|. The decode attention's tests allow 1e-4 of each output row's norm.
    tools/e4m3_query_split.py
"""
import math
import random

HEAD_DIM, TRIALS = 128, 200


def e4m3(x):
    """x rounded to the nearest E4M3 value (ties to even; saturating at 448; subnormals from 2^-9)."""
    if x == 0:
        return 0.0
    sign, size = (-1.0 if x < 0 else 1.0), abs(x)
    step = 2.0 ** (max(math.floor(math.log2(size)), -6) - 3)
    return sign * min(round(size / step) * step, 448.0)


def main():
    rng = random.Random(1)
    for parts in (1, 2, 3):
        worst = total = 0.0
        for _ in range(TRIALS):
            q = [rng.gauss(0, 1) for _ in range(HEAD_DIM)]
            k = [e4m3(rng.gauss(0, 1) * 8) / 8 for _ in range(HEAD_DIM)]
            scale = 2.0 ** (8 - math.ceil(math.log2(max(abs(v) for v in q))))
            rest, approx = [v * scale for v in q], [0.0] * HEAD_DIM
            for _ in range(parts):
                part = [e4m3(v) for v in rest]
                approx = [a + b for a, b in zip(approx, part)]
                rest = [v - b for v, b in zip(rest, part)]
            exact = sum(a * b for a, b in zip(q, k))
            got = sum(a * b for a, b in zip(approx, k)) / scale
            error = abs(got - exact) / (math.sqrt(sum(a * a for a in q)) * math.sqrt(sum(b * b for b in k)))
            worst, total = max(worst, error), total + error
        print(f"{parts} E4M3 part(s) of q: score error / (|q||K|): mean {total / TRIALS:.2e}, worst {worst:.2e}")


if __name__ == "__main__":
    main()
