#!/usr/bin/env python3
# The grouped decode attention kernel (src/backend/cuda/attention.cu) emulated lane by lane in numpy:
# its index permutations (which head-dim elements and V rows each lane loads), byte permutes into MMA
# fragments and the m16n8k16 fragment layouts of the PTX ISA, for one warp over a span of positions,
# against plain softmax(q·Kᵀ/sqrt(d))·V. A design check of the maps (no GPU, no rounding: values stay
# float64); the kernel itself is tested on the GPU by tests/backend/cuda/decode_attention_test.cpp.
# Usage: tools/decode_attention_fragments.py [seed]
import numpy as np, sys
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

def mma(C, A, B):  # C[lane][4], A[lane][4] (each a pair), B[lane][2] (pairs)
    Am = np.zeros((16,16)); Bm = np.zeros((16,8)); Cm = np.zeros((16,8))
    for lane in range(32):
        g, t = lane//4, lane%4
        Am[g,2*t:2*t+2] = A[lane][0]; Am[g+8,2*t:2*t+2] = A[lane][1]
        Am[g,8+2*t:8+2*t+2] = A[lane][2]; Am[g+8,8+2*t:8+2*t+2] = A[lane][3]
        Bm[2*t:2*t+2,g] = B[lane][0]; Bm[8+2*t:8+2*t+2,g] = B[lane][1]
        Cm[g,2*t:2*t+2] = C[lane][0:2]; Cm[g+8,2*t:2*t+2] = C[lane][2:4]
    D = Am @ Bm + Cm
    for lane in range(32):
        g, t = lane//4, lane%4
        C[lane][0:2] = D[g,2*t:2*t+2]; C[lane][2:4] = D[g+8,2*t:2*t+2]

def byte_perm(x, y, sel):  # x, y: lists of 4 byte-slots
    src = list(x) + list(y)
    return [src[(sel >> (4*k)) & 0xF] for k in range(4)]

def run(D, group, kbytes, count):
    E = 16 // kbytes; chunks = D // 16; R = D // 8
    K = rng.normal(size=(count, D)); V = rng.normal(size=(count, D)); Q = rng.normal(size=(group, D))
    scale = 1/np.sqrt(D)
    # words as lists of elements: fp8 word = 4 elements (bytes), bf16 word = 2 elements (halves)
    per_word = 4 // kbytes
    def words_of(row_elems):  # list of elements -> list of words
        return [row_elems[i:i+per_word] for i in range(0, len(row_elems), per_word)]
    # Q fragments per lane
    qf = []
    for lane in range(32):
        g, t = lane//4, lane%4
        fr = []
        for j in range(chunks):
            e = 4*j; phys = e//E*4*E + t*E + e%E
            v = Q[min(g, group-1), phys:phys+4] * (scale if g < group else 0.0)
            fr.append((v[0:2], v[2:4]))
        qf.append(fr)
    m = [[-np.inf]*2 for _ in range(32)]; l = [[0.0]*2 for _ in range(32)]
    acc = [[np.zeros(4) for _ in range(chunks)] for _ in range(32)]
    tiles = (count + 15)//16
    for tile in range(tiles):
        base = tile*16
        key = []; val = []; valid = []
        for lane in range(32):
            g, t = lane//4, lane%4
            kk = []; vv = []; vd = []
            for half in range(2):
                p = base + g + 8*half
                vd.append(p < count)
                elems = []
                kpieces = D//4*kbytes//16
                for piece in range(kpieces):
                    off = piece*4*E + t*E
                    elems += list(K[p, off:off+E]) if p < count else [0.0]*E
                kk.append(words_of(elems))
            for v in range(4):
                p = base + 2*t + (v & 1) + 8*(v >> 1)
                vv.append(words_of(list(V[p, R*g:R*g+R]) if p < count else [0.0]*R))
            key.append(kk); val.append(vv); valid.append(vd)
        S = [np.zeros(4) for _ in range(32)]
        for j in range(chunks):
            A = []; B = []
            for lane in range(32):
                lo, hi = key[lane][0], key[lane][1]
                if kbytes == 2:
                    A.append([np.array(lo[2*j]), np.array(hi[2*j]), np.array(lo[2*j+1]), np.array(hi[2*j+1])])
                else:
                    A.append([np.array(lo[j][0:2]), np.array(hi[j][0:2]), np.array(lo[j][2:4]), np.array(hi[j][2:4])])
                B.append([qf[lane][j][0], qf[lane][j][1]])
            mma(S, A, B)
        ex = np.full((16, 8), np.nan)
        for h in range(2):
            for lane in range(32):
                g, t = lane//4, lane%4
                for half in range(2):
                    if not valid[lane][half]: S[lane][2*half+h] = -np.inf
            for t in range(4):
                mx = max(S[g*4+t][2*half+h] for g in range(8) for half in range(2))
                for g in range(8):
                    lane = g*4+t
                    new = max(m[lane][h], mx); ref = 0.0 if new == -np.inf else new
                    corr = np.exp(m[lane][h] - ref); m[lane][h] = new; l[lane][h] *= corr
                    for i in range(chunks): acc[lane][i][h] *= corr; acc[lane][i][2+h] *= corr
                    for half in range(2):
                        p = np.exp(S[lane][2*half+h] - ref); l[lane][h] += p
                        ex[g + 8*half][2*t+h] = p
        for i in range(chunks):
            A = []; B = []
            for lane in range(32):
                g, t = lane//4, lane%4
                r0, r1, r8, r9 = val[lane]
                if kbytes == 2:
                    A.append([np.array([r0[i][0], r1[i][0]]), np.array([r0[i][1], r1[i][1]]),
                              np.array([r8[i][0], r9[i][0]]), np.array([r8[i][1], r9[i][1]])])
                else:
                    sel = 0x5140 if i % 2 == 0 else 0x7362
                    low = byte_perm(r0[i//2], r1[i//2], sel); high = byte_perm(r8[i//2], r9[i//2], sel)
                    A.append([np.array(low[0:2]), np.array(low[2:4]), np.array(high[0:2]), np.array(high[2:4])])
                B.append([np.array([ex[2*t][g], ex[2*t+1][g]]), np.array([ex[2*t+8][g], ex[2*t+9][g]])])
            a_acc = [acc[lane][i] for lane in range(32)]
            mma(a_acc, A, B)
    # gather
    out = np.zeros((8, D)); L = np.zeros(8)
    for lane in range(32):
        g, t = lane//4, lane%4
        for h in range(2):
            L[2*t+h] += l[lane][h]
            for i in range(chunks):
                out[2*t+h][R*g+2*i] = acc[lane][i][h]; out[2*t+h][R*g+2*i+1] = acc[lane][i][2+h]
    out = out[:group] / L[:group, None]
    s = Q @ K.T * scale; s -= s.max(axis=1, keepdims=True); p = np.exp(s); p /= p.sum(axis=1, keepdims=True)
    want = p @ V
    err = np.abs(out - want).max()
    print(f"D {D} group {group} bytes {kbytes} count {count}: max error {err:.2e}")
    assert err < 1e-9

for D in (64, 128):
    for kbytes in (1, 2):
        for group in (1, 3, 8):
            for count in (16, 37):
                run(D, group, kbytes, count)
