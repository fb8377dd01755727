"""The classifier's second level: meta-features (base scores, rule hits, turn context,
definition similarity), the calibrator fitted on out-of-fold base scores (Platt-style
stacking, pooled over labels or per label), and per-label thresholds chosen on its
out-of-fold calibrated scores.

A mixin of :class:`pipeline.classify.model.ThemeClassifier`; split from model.py so each
file holds one responsibility.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.classify.bases import _sigmoid


class StackingMixin:
    """Context/meta features, calibrator and thresholds of :class:`ThemeClassifier`."""

    # ------------------------------------------------------------ features
    def _context(self, P, groups, lengths):
        """prev / next / turn-mean of a per-sentence score matrix P [n, L], within groups."""
        n, L = P.shape
        prev = np.zeros_like(P)
        nxt = np.zeros_like(P)
        mean = np.zeros_like(P)
        order = pd.Series(np.arange(n)).groupby(np.asarray(groups), sort=False)
        for _, idx in order:
            idx = idx.to_numpy()
            if len(idx) > 1:
                prev[idx[1:]] = P[idx[:-1]]
                nxt[idx[:-1]] = P[idx[1:]]
                # local window (not the whole turn: long presentations change topic)
                w = int(self.context_window)
                G = P[idx]
                csum = np.vstack([np.zeros((1, L)), np.cumsum(G, axis=0)])
                pos = np.arange(len(idx))
                lo = np.maximum(pos - w, 0)
                hi = np.minimum(pos + w + 1, len(idx))
                cnt = (hi - lo - 1)[:, None]
                mean[idx] = np.divide(csum[hi] - csum[lo] - G, cnt, out=np.zeros_like(G), where=cnt > 0)
        short = (np.asarray(lengths) <= self.context_max_chars).astype(float)[:, None]
        return prev, nxt, mean, short

    def _meta_features(self, S_lex, S_emb, Hb, groups, lengths, D=None):
        feats = []
        has_lex = self.use_rules or self.use_terms
        parts = []
        if has_lex:
            parts.append(_sigmoid(S_lex))
        if self.use_embeddings:
            parts.append(_sigmoid(S_emb))
        P = np.mean(parts, axis=0) if parts else np.zeros_like(S_lex)
        if self.use_context:
            prev, nxt, mean, short = self._context(P, groups, lengths)
        if D is not None:
            Dctx = self._context(D, groups, lengths)[2] if self.use_context else D
        L = S_lex.shape[1]
        gated = self.use_context and getattr(self, "context_gate", False)
        for j in range(L):
            f = []
            if has_lex:
                f.append(S_lex[:, j])
            if self.use_embeddings:
                f.append(S_emb[:, j])
            if self.use_rules:
                f += [Hb[:, j, 0], Hb[:, j, 1]]
            # context_gate: a long sentence's context counts in proportion to its own evidence for
            # the theme (its own base score), so a long speech's theme does not spread to its
            # off-topic sentences; a short sentence (a follow-up) still takes its context in full
            g = short[:, 0] + (1.0 - short[:, 0]) * P[:, j] if gated else None
            if self.use_context:
                ctx = [prev[:, j], nxt[:, j], mean[:, j]]
                f += ([c * g for c in ctx] if gated else ctx) + [short[:, 0] * prev[:, j]]
            if D is not None:
                # similarity to the theme's definition prototypes, absolute and relative to the
                # sentence's mean over themes (one weight shared by all themes: a prior that
                # does not depend on the sample's wording), and its turn-context mean
                f += [D[:, j], D[:, j] - D.mean(1), Dctx[:, j] * g if gated else Dctx[:, j]]
            feats.append(np.column_stack(f) if f else np.zeros((len(S_lex), 1)))
        return feats

    def _pooled(self, feats, Y=None):
        """Stack per-label meta features into one design: rows ordered label-major."""
        L = len(feats)
        n = feats[0].shape[0]
        onehot = np.repeat(np.eye(L), n, axis=0)
        F = np.vstack(feats)
        blocks = [F, onehot]
        if self.label_interactions and self.use_rules:
            # label-specific weight for the label's own cue / rule hit (rule precision differs by theme)
            first = int(self.use_rules or self.use_terms) + int(bool(self.use_embeddings))
            blocks += [onehot * F[:, [c]] for c in (first, first + 1)]
        Z = np.hstack(blocks)
        rows = np.tile(np.arange(n), L)
        yz = Y.T.reshape(-1) if Y is not None else None
        return Z, yz, rows

    # ------------------------------------------------------------ calibrator + thresholds
    def _fit_calibrator(self, feats, Y, folds, A, w=None) -> None:
        """Calibrator (``meta_``, ``C_meta_``), out-of-fold calibrated scores (``oof_scores_``)
        and per-label thresholds (``thresholds_``); ``A`` is the [n, L] scope mask, ``w`` the
        rows' weights (None: all 1) for the calibrator's fit, its C choice and the thresholds."""
        self.thresholds_ = np.ones(Y.shape[1])
        if self.meta == "pooled":
            oof_p = self._fit_pooled_calibrator(feats, Y, folds, A, w)
        else:
            oof_p = self._fit_per_label_calibrator(feats, Y, folds, A, w)
        self.oof_scores_ = oof_p

    def _fit_pooled_calibrator(self, feats, Y, folds, A, w=None):
        # one calibrator shared by all labels (+ a per-label intercept): "a rule hit /
        # a high base score means the theme" is learned from every label at once, which
        # keeps rare labels (whose examples sit in one long turn) calibrated
        from sklearn.linear_model import LogisticRegression

        n, L = Y.shape
        oof_p = np.zeros((n, L))
        Z, yz, rows = self._pooled(feats, Y)
        cols = np.repeat(np.arange(L), n)
        wz = None if w is None else np.asarray(w, dtype=float)[rows]  # label-major like Z
        grid = list(self.C_meta) if isinstance(self.C_meta, (list, tuple)) else [float(self.C_meta)]
        best_loss, self.C_meta_ = np.inf, grid[0]
        for c in grid:  # calibrator strength chosen by out-of-fold log-loss (nested)
            cand = np.zeros((n, L))
            for tr, te in folds:
                trm = np.isin(rows, tr)
                m = LogisticRegression(C=c, max_iter=1000).fit(Z[trm], yz[trm],
                                                               sample_weight=None if wz is None else wz[trm])
                tem = np.isin(rows, te)
                cand[rows[tem], cols[tem]] = m.predict_proba(Z[tem])[:, 1]
            pc = np.clip(cand, 1e-6, 1 - 1e-6)
            ll = Y * np.log(pc) + (1 - Y) * np.log(1 - pc)
            loss = -(np.mean(ll) if w is None else np.average(ll.mean(1), weights=w))
            if loss < best_loss - 1e-9:
                best_loss, self.C_meta_, oof_p = loss, c, cand
        oof_p *= A
        self.meta_ = LogisticRegression(C=self.C_meta_, max_iter=1000).fit(Z, yz, sample_weight=wz)
        # per-label thresholds, shrunk towards the pooled threshold by the label's
        # number of positives (a label seen 10 times cannot support a sharp threshold)
        t_all = _best_threshold(Y.reshape(-1), oof_p.reshape(-1), None if w is None else np.repeat(w, L))
        k = float(self.threshold_shrinkage)
        for j in range(L):
            npos = Y[:, j].sum()
            if 0 < npos < len(Y):
                t_j = _best_threshold(Y[:, j], oof_p[:, j], w)
                self.thresholds_[j] = (npos * t_j + k * t_all) / (npos + k)
        return oof_p

    def _fit_per_label_calibrator(self, feats, Y, folds, A, w=None):
        from sklearn.linear_model import LogisticRegression

        n, L = Y.shape
        oof_p = np.zeros((n, L))
        c_meta = self.C_meta if not isinstance(self.C_meta, (list, tuple)) else self.C_meta[len(self.C_meta) // 2]
        self.C_meta_ = c_meta
        self.meta_ = []
        for j in range(L):
            y = Y[:, j]
            if y.min() == y.max():
                self.meta_.append(float(y.mean()) if len(y) else 0.0)
                oof_p[:, j] = self.meta_[-1]
                continue
            for tr, te in folds:
                if Y[tr, j].min() == Y[tr, j].max():
                    oof_p[te, j] = Y[tr, j].mean()
                    continue
                m = LogisticRegression(C=c_meta, max_iter=500).fit(feats[j][tr], y[tr],
                                                                   sample_weight=None if w is None else w[tr])
                oof_p[te, j] = m.predict_proba(feats[j][te])[:, 1]
            oof_p[:, j] *= A[:, j]
            self.meta_.append(LogisticRegression(C=c_meta, max_iter=500).fit(feats[j], y, sample_weight=w))
            self.thresholds_[j] = _best_threshold(y, oof_p[:, j], w)
        return oof_p

    def _calibrated(self, feats, n):
        """Calibrated probabilities [n, L] from the meta features (before the scope mask)."""
        L = len(self.classes_)
        P = np.zeros((n, L))
        if self.meta == "pooled":
            Z, _, _ = self._pooled(feats)
            P = self.meta_.predict_proba(Z)[:, 1].reshape(L, n).T
        else:
            for j, m in enumerate(self.meta_):
                P[:, j] = m.predict_proba(feats[j])[:, 1] if hasattr(m, "predict_proba") else m
        return P


def _best_threshold(y, p, w=None) -> float:
    """Threshold maximising F1 (rows weighted by ``w``) on out-of-fold scores (middle of the best
    plateau)."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    y = np.asarray(y) == 1
    f1s = [f1_score(y, p >= t, zero_division=0, sample_weight=w) for t in grid]
    f1s = np.array(f1s)
    best = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    return float(grid[best[len(best) // 2]])
