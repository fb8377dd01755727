"""The classifier's base models: coding-rule hits + TF-IDF terms (lexical view) and sentence
embeddings (semantic view), one logistic regression per label and view, with the C of each
view chosen on inner grouped folds (out-of-fold average precision).

A mixin of :class:`pipeline.classify.model.ThemeClassifier` (state lives on the estimator,
scikit-learn style); split from model.py so each file holds one responsibility.
"""
from __future__ import annotations

import numpy as np


def _identity(x):
    return x


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _logit(p, eps=1e-4):
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


class BaseModelsMixin:
    """Rule/term/embedding base models of :class:`ThemeClassifier`."""

    # ------------------------------------------------------------ rules
    def _setup_rules(self, tax) -> None:
        """Compile the taxonomy's cues + coding rules; rule -> theme maps (cue vs coding rule)."""
        from scipy import sparse

        from pipeline.classify.rules import RuleSet

        self.taxonomy_ = tax
        self.classes_ = np.array(tax.ids)
        self.exclusive_ = np.array([t.exclusive for t in tax.themes])
        specs = tax.rule_specs(include_rules=bool(self.use_coding_rules))
        n_cues = {t.id: len(set(t.cues)) for t in tax.themes}
        self.rules_ = RuleSet(specs)
        K, L = len(self.rules_), len(tax.ids)
        Mc = np.zeros((K, L), dtype=np.float32)
        Mr = np.zeros((K, L), dtype=np.float32)
        seen: dict[str, int] = {}
        for k, (tid, _) in enumerate(specs):
            seen[tid] = seen.get(tid, 0) + 1
            (Mc if seen[tid] <= n_cues[tid] else Mr)[k, tax.ids.index(tid)] = 1
        self.scope_rule_ = tax.scope or None
        self.scope_in_sentence_rule_ = tax.scope_in_sentence or None
        self.scope_window_ = int(tax.scope_window)
        self.scope_windows_ = np.array([tax.scope_window if t.scope_window is None else t.scope_window
                                        for t in tax.themes], dtype=int)
        self.requires_scope_ = np.array([t.requires_scope for t in tax.themes])
        self.rule_theme_map_cue_ = sparse.csr_matrix(Mc)
        self.rule_theme_map_rule_ = sparse.csr_matrix(Mr)

    def _rule_block(self, df):
        from scipy import sparse

        R, evidence = self.rules_.hits(df["text"].tolist(), df["terms"].tolist())
        cue = R @ self.rule_theme_map_cue_  # any plain cue of the theme fired
        rule = R @ self.rule_theme_map_rule_  # any coding rule of the theme fired
        Hc = (cue.toarray() > 0).astype(np.float32)
        Hr = (rule.toarray() > 0).astype(np.float32)
        Hb = np.stack([Hc, Hr], axis=2)  # [n, L, 2]
        block = sparse.hstack([R, sparse.csr_matrix(Hc), sparse.csr_matrix(Hr)]).tocsr() * float(self.rule_weight)
        return block, Hb, evidence

    # ------------------------------------------------------------ base models
    def _lex_matrix(self, vec, rules_block, terms, d=None):
        from scipy import sparse

        blocks = []
        if self.use_rules:
            blocks.append(rules_block)
        if self.use_terms and vec is not None:
            blocks.append(vec.transform(terms))
        if not blocks:
            return None
        return self._augment(sparse.hstack(blocks).tocsr(), d)

    # ------------------------------------------------------------ councils (domains)
    def _domain_index(self, df) -> np.ndarray | None:
        """Per row of ``df``: the index of its council in ``domains_`` (the councils with labels in
        training), -1 for a council never seen in training (or none given); None when the fit has
        no council blocks (``domain_adaptation`` off, or fewer than two councils labelled)."""
        domains = list(getattr(self, "domains_", None) or [])
        if not domains:
            return None
        if "domain" not in df.columns:
            return np.full(len(df), -1, dtype=int)
        pos = {c: k for k, c in enumerate(domains)}
        return np.array([pos.get(str(c), -1) for c in df["domain"]], dtype=int)

    def _augment(self, M, d):
        """Feature augmentation (Daume III 2007, "Frustratingly easy domain adaptation"): the
        shared copy of every feature, then one copy per training council that is non-zero only on
        that council's rows. A row of a council never seen in training (``d`` = -1) has the
        shared copy only, so it is scored by the weights all councils share. ``d`` None: ``M``
        unchanged (no council blocks)."""
        if d is None or M is None:
            return M
        K = len(self.domains_)
        if hasattr(M, "tocsr"):
            from scipy import sparse

            return sparse.hstack([M] + [sparse.diags((d == k).astype(M.dtype)) @ M for k in range(K)]).tocsr()
        M = np.asarray(M)
        return np.hstack([M] + [M * (d == k).astype(M.dtype)[:, None] for k in range(K)])

    def _new_vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer=_identity, sublinear_tf=True, min_df=2, norm="l2")

    def _fit_bases(self, lex_train_terms, rules_train, E_train, Y, sample_weight, d, C_lex, C_emb):
        """Fit per-label base models (rows weighted by ``sample_weight``, None: all 1; ``d`` the rows'
        council indices for :meth:`_augment`, None: no council blocks); returns a dict of fitted
        pieces. (The TF-IDF vocabulary and idf are unweighted: which terms exist.)"""
        from sklearn.linear_model import LogisticRegression

        vec = None
        if self.use_terms:
            vec = self._new_vectorizer()
            try:
                vec.fit(lex_train_terms)
            except ValueError:  # empty vocabulary
                vec = None
        Xl = self._lex_matrix(vec, rules_train, lex_train_terms, d)
        E_train = self._augment(E_train, d)

        def fit_or_prior(X, y, C):
            # a label constant in this fold (or a missing view) scores as its base rate
            if X is None or y.min() == y.max():
                return float(y.mean()) if len(y) else 0.0
            return LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=200,
                                      random_state=self.random_state).fit(X, y, sample_weight=sample_weight)

        lex = [fit_or_prior(Xl, Y[:, j], C_lex) for j in range(Y.shape[1])]
        emb = [fit_or_prior(E_train, Y[:, j], C_emb) for j in range(Y.shape[1])]
        return {"vec": vec, "lex": lex, "emb": emb}

    def _base_scores(self, bases, terms, rules_block, E, d=None):
        n = rules_block.shape[0]
        L = len(bases["lex"])
        Xl = self._lex_matrix(bases["vec"], rules_block, terms, d)
        E = self._augment(E, d)
        S_lex = np.zeros((n, L))
        S_emb = np.zeros((n, L))
        for j in range(L):
            m = bases["lex"][j]
            S_lex[:, j] = m.decision_function(Xl) if hasattr(m, "decision_function") else _logit(np.full(n, m))
            m = bases["emb"][j]
            if E is not None and hasattr(m, "decision_function"):
                S_emb[:, j] = m.decision_function(E)
            else:
                S_emb[:, j] = _logit(np.full(n, m)) if isinstance(m, float) else 0.0
        return S_lex, S_emb

    @staticmethod
    def _with_rows(base, extra):
        """Training pieces (terms, rules, E, Y, weights, council indices) plus extra rows
        (prototypes, pseudo-labels; four pieces, five with their weights, six with their council
        indices). Weights stay None while both sides are unweighted (extra rows without weights
        weigh 1); council indices stay None without council blocks (extra rows without them:
        -1, the shared copy only -- the taxonomy's prototypes belong to no council)."""
        from scipy import sparse

        if extra is None:
            return base
        t, r, e, y, w, d = base
        te, re_, ee, ye = extra[:4]
        we = extra[4] if len(extra) > 4 else None
        de = extra[5] if len(extra) > 5 else None
        if w is not None or we is not None:
            w = np.concatenate([np.ones(len(y)) if w is None else np.asarray(w, dtype=float),
                                np.ones(len(ye)) if we is None else np.asarray(we, dtype=float)])
        if d is not None:
            d = np.concatenate([d, np.full(len(ye), -1, dtype=int) if de is None else np.asarray(de, dtype=int)])
        return (list(t) + list(te), sparse.vstack([r, re_]).tocsr(),
                None if e is None or ee is None else np.vstack([e, ee]), np.vstack([y, ye]), w, d)

    # ------------------------------------------------------------ C on inner folds
    def _inner_folds(self, groups):
        from sklearn.model_selection import GroupKFold

        k = max(2, min(int(self.inner_folds), len(set(groups))))
        return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))

    def _tune_bases(self, terms, RB, E, Y, folds, proto, w=None, d=None):
        """Out-of-fold base scores for every C on the grids (inner grouped CV); sets ``C_lex_`` /
        ``C_emb_`` (best mean average precision, rows weighted by ``w``) and returns the OOF scores
        at those Cs."""
        L = Y.shape[1]
        grid_lex = list(self.C_lex) if (self.use_rules or self.use_terms) else [1.0]
        grid_emb = list(self.C_emb) if self.use_embeddings else [1.0]
        oof_lex = {c: np.zeros((len(Y), L)) for c in grid_lex}
        oof_emb = {c: np.zeros((len(Y), L)) for c in grid_emb}
        for tr, te in folds:
            tterms, trb, te_, ty, tw, td = self._with_rows(
                ([terms[i] for i in tr], RB[tr], E[tr] if E is not None else None, Y[tr],
                 None if w is None else w[tr], None if d is None else d[tr]), proto)
            for ci in range(max(len(grid_lex), len(grid_emb))):
                cl = grid_lex[min(ci, len(grid_lex) - 1)]
                ce = grid_emb[min(ci, len(grid_emb) - 1)]
                b = self._fit_bases(tterms, trb, te_, ty, tw, td, cl, ce)
                sl, se = self._base_scores(b, [terms[i] for i in te], RB[te], E[te] if E is not None else None,
                                           None if d is None else d[te])
                if ci < len(grid_lex):
                    oof_lex[cl][te] = sl
                if ci < len(grid_emb):
                    oof_emb[ce][te] = se
        self.C_lex_, self.cv_ap_lex_ = _best_C(oof_lex, Y, w)
        self.C_emb_, self.cv_ap_emb_ = _best_C(oof_emb, Y, w)
        return oof_lex[self.C_lex_], oof_emb[self.C_emb_]


def _best_C(oof: dict, Y, w=None) -> tuple[float, dict]:
    """The C whose out-of-fold scores have the best mean average precision (rows weighted by
    ``w``) over the labels that vary (ties: the C closest to 1), and every C's score."""
    from sklearn.metrics import average_precision_score

    L = Y.shape[1]
    scores = {}
    for c, S in oof.items():
        aps = [average_precision_score(Y[:, j], S[:, j], sample_weight=w) for j in range(L)
               if 0 < Y[:, j].sum() < len(Y)]
        scores[c] = float(np.mean(aps)) if aps else 0.0
    return max(scores, key=lambda c: (scores[c], -abs(np.log(c)))), scores
