"""``ThemeClassifier``: multi-label policy-theme tagger (a scikit-learn estimator).

Signals, each used for what it is good at:

* coding rules from the taxonomy (KH Coder style, over lemmas and surface text) –
  precise, readable evidence;
* TF-IDF over content terms – the vocabulary of the labelled data;
* sentence embeddings (embed stage backend) – paraphrase and context;
* context – scores of the neighbouring sentences in the same speaker turn (a short
  follow-up sentence inherits its theme; the turn's overall theme carries over).

Per label, two base logistic regressions (lexical: rules+terms; semantic:
embedding) are fitted; their out-of-fold scores from an inner grouped CV, the
label's rule hit and context features feed a small logistic regression that is
the calibrated score (Platt-style stacking). Per-label thresholds are chosen on
out-of-fold calibrated scores, and the C of each base model on inner folds, so
all tuning happens inside ``fit``. Abstention (no theme) is a normal outcome.

``X`` is a DataFrame with ``text`` and optionally ``terms`` (list of content terms),
``group`` (speaker-turn id; rows in document order) and ``embedding`` (vector);
missing terms/embeddings are computed with the parse/embed libraries.
``Y`` is a 0/1 matrix [n, n_themes] in taxonomy order (``classes_``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

log = logging.getLogger("policy_topics.classify")


def _identity(x):
    return x


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _logit(p, eps=1e-4):
    p = np.clip(p, eps, 1 - eps)
    return np.log(p / (1 - p))


class ThemeClassifier(BaseEstimator):
    def __init__(
        self,
        taxonomy=None,
        use_rules: bool = True,
        use_coding_rules: bool = True,
        use_terms: bool = True,
        use_embeddings: bool = True,
        use_context: bool = True,
        C_lex: Sequence[float] = (0.3, 1.0, 3.0),
        C_emb: Sequence[float] = (0.3, 1.0, 3.0),
        C_meta: float | Sequence[float] = (0.1, 0.3, 1.0),
        meta: str = "pooled",
        label_interactions: bool = True,
        threshold_shrinkage: float = 10.0,
        inner_folds: int = 3,
        rule_weight: float = 1.0,
        context_max_chars: int = 40,
        context_window: int = 2,
        embedding_backend: str = "use_multilingual",
        use_definitions: bool = True,
        self_training: bool = True,
        pseudo_min_proba: float = 0.8,
        random_state: int = 42,
    ):
        self.taxonomy = taxonomy
        self.use_rules = use_rules
        self.use_coding_rules = use_coding_rules
        self.use_terms = use_terms
        self.use_embeddings = use_embeddings
        self.use_context = use_context
        self.C_lex = C_lex
        self.C_emb = C_emb
        self.C_meta = C_meta
        self.meta = meta
        self.label_interactions = label_interactions
        self.threshold_shrinkage = threshold_shrinkage
        self.inner_folds = inner_folds
        self.rule_weight = rule_weight
        self.context_max_chars = context_max_chars
        self.context_window = context_window
        self.embedding_backend = embedding_backend
        self.use_definitions = use_definitions
        self.self_training = self_training
        self.pseudo_min_proba = pseudo_min_proba
        self.random_state = random_state

    # ------------------------------------------------------------ inputs
    def _load_taxonomy(self):
        from pipeline.classify.taxonomy import Taxonomy, load_taxonomy

        if isinstance(self.taxonomy, Taxonomy):
            return self.taxonomy
        return load_taxonomy(self.taxonomy)

    def prepare(self, X) -> pd.DataFrame:
        """Normalise ``X`` to a frame with text, terms, group (+ embedding when used)."""
        from pipeline.classify.features import encode_texts, terms_for_texts

        if isinstance(X, pd.Series):
            X = X.to_frame("text")
        elif not isinstance(X, pd.DataFrame):
            X = pd.DataFrame({"text": [str(x) for x in X]})
        df = pd.DataFrame({"text": X["text"].fillna("").astype(str).to_numpy()})
        if "terms" in X.columns:
            df["terms"] = [list(t) if t is not None and not isinstance(t, float) else [] for t in X["terms"]]
        else:
            df["terms"] = terms_for_texts(df["text"].tolist())
        if "group" in X.columns:
            df["group"] = X["group"].astype(str).to_numpy()
        elif "utterance_id" in X.columns:  # parse sentences passed as they are
            df["group"] = X["utterance_id"].astype(str).to_numpy()
        else:
            df["group"] = [f"row{i}" for i in range(len(df))]
        if self.use_embeddings:
            if "embedding" in X.columns:
                df["embedding"] = list(np.vstack(X["embedding"].to_numpy()).astype(np.float32)) if len(X) else []
            else:
                df["embedding"] = list(encode_texts(df["text"].tolist(), self.embedding_backend)) if len(df) else []
        return df

    # ------------------------------------------------------------ features
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

    def _lex_matrix(self, vec, rules_block, terms):
        from scipy import sparse

        blocks = []
        if self.use_rules:
            blocks.append(rules_block)
        if self.use_terms and vec is not None:
            blocks.append(vec.transform(terms))
        if not blocks:
            return None
        return sparse.hstack(blocks).tocsr()

    def _new_vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer=_identity, sublinear_tf=True, min_df=2, norm="l2")

    def _fit_bases(self, lex_train_terms, rules_train, E_train, Y, C_lex, C_emb):
        """Fit per-label base models; returns a dict of fitted pieces."""
        from sklearn.linear_model import LogisticRegression

        vec = None
        if self.use_terms:
            vec = self._new_vectorizer()
            try:
                vec.fit(lex_train_terms)
            except ValueError:  # empty vocabulary
                vec = None
        Xl = self._lex_matrix(vec, rules_train, lex_train_terms)
        def fit_or_prior(X, y, C):
            # a label constant in this fold (or a missing view) scores as its base rate
            if X is None or y.min() == y.max():
                return float(y.mean()) if len(y) else 0.0
            return LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=200,
                                      random_state=self.random_state).fit(X, y)

        lex = [fit_or_prior(Xl, Y[:, j], C_lex) for j in range(Y.shape[1])]
        emb = [fit_or_prior(E_train, Y[:, j], C_emb) for j in range(Y.shape[1])]
        return {"vec": vec, "lex": lex, "emb": emb}

    def _base_scores(self, bases, terms, rules_block, E):
        n = rules_block.shape[0]
        L = len(bases["lex"])
        Xl = self._lex_matrix(bases["vec"], rules_block, terms)
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
        for j in range(L):
            f = []
            if has_lex:
                f.append(S_lex[:, j])
            if self.use_embeddings:
                f.append(S_emb[:, j])
            if self.use_rules:
                f += [Hb[:, j, 0], Hb[:, j, 1]]
            if self.use_context:
                f += [prev[:, j], nxt[:, j], mean[:, j], short[:, 0] * prev[:, j]]
            if D is not None:
                # similarity to the theme's definition prototypes, absolute and relative to the
                # sentence's mean over themes (one weight shared by all themes: a prior that
                # does not depend on the sample's wording), and its turn-context mean
                f += [D[:, j], D[:, j] - D.mean(1), Dctx[:, j]]
            feats.append(np.column_stack(f) if f else np.zeros((len(S_lex), 1)))
        return feats

    # ------------------------------------------------------------ definitions
    def _uses_definitions(self) -> bool:
        return bool(self.use_definitions) and bool(self.taxonomy_.prototype_texts())

    def _definition_rows(self, tax):
        """The taxonomy's prototypes as extra training rows for the base models:
        (terms, rule block, embeddings or None, Y) -- or None when switched off."""
        pairs = tax.prototype_texts() if self.use_definitions else []
        if not pairs:
            self.proto_emb_, self.proto_theme_ = None, None
            return None
        texts = [t for _, t in pairs]
        Yp = np.zeros((len(pairs), len(tax.ids)), dtype=int)
        for i, (tid, _) in enumerate(pairs):
            Yp[i, tax.ids.index(tid)] = 1
        terms = _cached_terms(tuple(texts))
        dfp = pd.DataFrame({"text": texts, "terms": terms})
        RBp, _, _ = self._rule_block(dfp)
        Ep = None
        self.proto_emb_, self.proto_theme_ = None, None
        if self.use_embeddings:
            Ep = _cached_embeddings(tuple(texts), self.embedding_backend)
            norm = np.linalg.norm(Ep, axis=1, keepdims=True)
            self.proto_emb_ = (Ep / np.maximum(norm, 1e-9)).astype(np.float32)
            self.proto_theme_ = np.array([tax.ids.index(tid) for tid, _ in pairs])
        return terms, RBp, Ep, Yp

    def _definition_similarity(self, E):
        """[n, L]: max cosine between each sentence and the theme's definition prototypes."""
        if E is None or getattr(self, "proto_emb_", None) is None:
            return None
        En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-9)
        S = En @ self.proto_emb_.T
        L = len(self.classes_)
        D = np.full((len(E), L), -1.0)
        for j in range(L):
            cols = self.proto_theme_ == j
            if cols.any():
                D[:, j] = S[:, cols].max(1)
        return D

    @staticmethod
    def _with_rows(base, extra):
        """Training pieces (terms, rules, E, Y) plus extra rows (prototypes, pseudo-labels)."""
        from scipy import sparse

        if extra is None:
            return base
        t, r, e, y = base
        te, re_, ee, ye = extra
        return (list(t) + list(te), sparse.vstack([r, re_]).tocsr(),
                None if e is None or ee is None else np.vstack([e, ee]), np.vstack([y, ye]))

    # ------------------------------------------------------------ fit
    def fit(self, X, Y):
        """Fit on labelled rows of ``Y`` (0/1); rows that are all -1 are unlabelled text
        (scikit-learn's semi-supervised convention): with ``self_training`` their confident
        predictions become extra training rows for the base models (the new meeting's own
        wording), otherwise they are ignored."""
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import average_precision_score
        from sklearn.model_selection import GroupKFold

        from pipeline.classify.rules import RuleSet

        tax = self._load_taxonomy()
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
        self.scope_window_ = int(tax.scope_window)
        self.requires_scope_ = np.array([t.requires_scope for t in tax.themes])
        self.rule_theme_map_cue_ = sparse.csr_matrix(Mc)
        self.rule_theme_map_rule_ = sparse.csr_matrix(Mr)

        df = self.prepare(X)
        Y = np.asarray(Y, dtype=int)
        if Y.ndim != 2 or Y.shape != (len(df), L):
            raise ValueError(f"Y must be [n_samples, {L}] (one column per taxonomy theme), got {Y.shape}")
        unl = (Y < 0).all(1)
        if ((Y < 0).any(1) & ~unl).any() or (Y > 1).any():
            raise ValueError("Y rows must be 0/1, or all -1 for an unlabelled row")
        df_u = df[unl].reset_index(drop=True)
        df, Y = df[~unl].reset_index(drop=True), Y[~unl]
        if len(df) == 0:
            raise ValueError("no labelled rows")
        proto = self._definition_rows(tax)
        terms = df["terms"].tolist()
        groups = df["group"].to_numpy()
        lengths = df["text"].str.len().to_numpy()
        RB, Hb, _ = self._rule_block(df)
        E = np.vstack(df["embedding"].to_numpy()) if self.use_embeddings and len(df) else None

        # ---- inner grouped CV: out-of-fold base scores for every C on the grids
        n_groups = len(set(groups))
        k = max(2, min(int(self.inner_folds), n_groups))
        folds = list(GroupKFold(n_splits=k).split(np.zeros(len(df)), groups=groups))
        grid_lex = list(self.C_lex) if (self.use_rules or self.use_terms) else [1.0]
        grid_emb = list(self.C_emb) if self.use_embeddings else [1.0]
        oof_lex = {c: np.zeros((len(df), L)) for c in grid_lex}
        oof_emb = {c: np.zeros((len(df), L)) for c in grid_emb}
        for tr, te in folds:
            tterms, trb, te_, ty = self._with_rows(
                ([terms[i] for i in tr], RB[tr], E[tr] if E is not None else None, Y[tr]), proto)
            for ci in range(max(len(grid_lex), len(grid_emb))):
                cl = grid_lex[min(ci, len(grid_lex) - 1)]
                ce = grid_emb[min(ci, len(grid_emb) - 1)]
                b = self._fit_bases(tterms, trb, te_, ty, cl, ce)
                sl, se = self._base_scores(b, [terms[i] for i in te], RB[te], E[te] if E is not None else None)
                if ci < len(grid_lex):
                    oof_lex[cl][te] = sl
                if ci < len(grid_emb):
                    oof_emb[ce][te] = se

        def best(oof):
            scores = {}
            for c, S in oof.items():
                aps = [average_precision_score(Y[:, j], S[:, j]) for j in range(L) if 0 < Y[:, j].sum() < len(Y)]
                scores[c] = float(np.mean(aps)) if aps else 0.0
            return max(scores, key=lambda c: (scores[c], -abs(np.log(c)))), scores

        self.C_lex_, self.cv_ap_lex_ = best(oof_lex)
        self.C_emb_, self.cv_ap_emb_ = best(oof_emb)
        S_lex, S_emb = oof_lex[self.C_lex_], oof_emb[self.C_emb_]

        # ---- stacking / calibration on out-of-fold scores; thresholds on OOF calibrated scores
        D = self._definition_similarity(E)
        feats = self._meta_features(S_lex, S_emb, Hb, groups, lengths, D)
        self.thresholds_ = np.ones(L)
        oof_p = np.zeros((len(df), L))
        A = self.allowed(df)
        if self.meta == "pooled":
            # one calibrator shared by all labels (+ a per-label intercept): "a rule hit /
            # a high base score means the theme" is learned from every label at once, which
            # keeps rare labels (whose examples sit in one long turn) calibrated
            Z, yz, rows = self._pooled(feats, Y)
            cols = np.repeat(np.arange(L), len(df))
            grid = list(self.C_meta) if isinstance(self.C_meta, (list, tuple)) else [float(self.C_meta)]
            best_loss, self.C_meta_ = np.inf, grid[0]
            for c in grid:  # calibrator strength chosen by out-of-fold log-loss (nested)
                cand = np.zeros((len(df), L))
                for tr, te in folds:
                    trm = np.isin(rows, tr)
                    m = LogisticRegression(C=c, max_iter=1000).fit(Z[trm], yz[trm])
                    tem = np.isin(rows, te)
                    cand[rows[tem], cols[tem]] = m.predict_proba(Z[tem])[:, 1]
                pc = np.clip(cand, 1e-6, 1 - 1e-6)
                loss = -np.mean(Y * np.log(pc) + (1 - Y) * np.log(1 - pc))
                if loss < best_loss - 1e-9:
                    best_loss, self.C_meta_, oof_p = loss, c, cand
            oof_p *= A
            self.meta_ = LogisticRegression(C=self.C_meta_, max_iter=1000).fit(Z, yz)
            # per-label thresholds, shrunk towards the pooled threshold by the label's
            # number of positives (a label seen 10 times cannot support a sharp threshold)
            t_all = _best_threshold(Y.reshape(-1), oof_p.reshape(-1))
            k = float(self.threshold_shrinkage)
            for j in range(L):
                npos = Y[:, j].sum()
                if 0 < npos < len(Y):
                    t_j = _best_threshold(Y[:, j], oof_p[:, j])
                    self.thresholds_[j] = (npos * t_j + k * t_all) / (npos + k)
        else:
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
                    m = LogisticRegression(C=c_meta, max_iter=500).fit(feats[j][tr], y[tr])
                    oof_p[te, j] = m.predict_proba(feats[j][te])[:, 1]
                oof_p[:, j] *= A[:, j]
                self.meta_.append(LogisticRegression(C=c_meta, max_iter=500).fit(feats[j], y))
                self.thresholds_[j] = _best_threshold(y, oof_p[:, j])
        self.oof_scores_ = oof_p

        # ---- final base models on all the data (+ the definition prototypes)
        full = self._with_rows((terms, RB, E, Y), proto)
        self.bases_ = self._fit_bases(*full, self.C_lex_, self.C_emb_)
        # ---- self-training on the unlabelled text (e.g. a new council's meetings): its
        # confident theme predictions become extra rows for the base models, so words that
        # only the new meeting uses start to count; calibrator and thresholds stay as fitted
        self.n_pseudo_ = {}
        if self.self_training and len(df_u):
            _, Pu, _, _ = self._scores_prepared(df_u)
            Yu = self.decide(Pu) * (Pu >= float(self.pseudo_min_proba))
            keep = Yu.any(1)
            if keep.any():
                RBu, _, _ = self._rule_block(df_u)
                Eu = np.vstack(df_u["embedding"].to_numpy())[keep] if E is not None else None
                extra = ([df_u["terms"].iloc[i] for i in np.flatnonzero(keep)], RBu[keep], Eu, Yu[keep])
                self.bases_ = self._fit_bases(*self._with_rows(full, extra), self.C_lex_, self.C_emb_)
                self.n_pseudo_ = {str(t): int(Yu[:, j].sum()) for j, t in enumerate(self.classes_) if Yu[:, j].any()}
        return self

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

    # ------------------------------------------------------------ predict
    def _scores(self, X):
        return self._scores_prepared(self.prepare(X))

    def _scores_prepared(self, df):
        if len(df) == 0:
            L = len(self.classes_)
            return df, np.zeros((0, L)), [], np.zeros((0, L))
        RB, Hb, evidence = self._rule_block(df)
        E = np.vstack(df["embedding"].to_numpy()) if self.use_embeddings else None
        S_lex, S_emb = self._base_scores(self.bases_, df["terms"].tolist(), RB, E)
        feats = self._meta_features(S_lex, S_emb, Hb, df["group"].to_numpy(), df["text"].str.len().to_numpy(),
                                    self._definition_similarity(E))
        L = len(self.classes_)
        P = np.zeros((len(df), L))
        if self.meta == "pooled":
            Z, _, _ = self._pooled(feats)
            P = self.meta_.predict_proba(Z)[:, 1].reshape(L, len(df)).T
        else:
            for j, m in enumerate(self.meta_):
                P[:, j] = m.predict_proba(feats[j])[:, 1] if hasattr(m, "predict_proba") else m
        P = P * self.allowed(df)
        return df, P, evidence, S_lex

    def allowed(self, df) -> np.ndarray:
        """[n, L] mask: False where a theme needs the taxonomy's scope and neither the sentence
        nor a neighbour in its turn (within ``scope_window``) matches the scope rule."""
        from pipeline.classify.rules import Doc, compile_rule

        n, L = len(df), len(self.classes_)
        if not getattr(self, "scope_rule_", None):
            return np.ones((n, L), dtype=bool)
        node = compile_rule(self.scope_rule_)
        hit = np.array([node.eval(Doc.make(t, terms))[0] for t, terms in zip(df["text"], df["terms"])], dtype=bool)
        inscope = hit.copy()
        w = self.scope_window_
        groups = df["group"].to_numpy()
        for _, idx in pd.Series(np.arange(n)).groupby(groups, sort=False):
            idx = idx.to_numpy()
            h = hit[idx]
            for k in range(1, w + 1):
                inscope[idx[k:]] |= h[:-k]
                inscope[idx[:-k]] |= h[k:]
        return inscope[:, None] | ~self.requires_scope_[None, :]

    def score_details(self, X):
        """(calibrated probabilities [n, L], rule evidence per row {theme: [cues]} for every theme)."""
        _, P, evidence, _ = self._scores(X)
        return P, evidence

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probability per theme, [n, n_themes]."""
        return self._scores(X)[1]

    def decide(self, P: np.ndarray) -> np.ndarray:
        """Thresholds + exclusivity (e.g. procedural only when no policy theme)."""
        Yp = (P >= self.thresholds_[None, :]).astype(int)
        if self.exclusive_.any():
            other = Yp[:, ~self.exclusive_].sum(1) > 0
            Yp[np.ix_(other, self.exclusive_)] = 0
        return Yp

    def predict(self, X) -> np.ndarray:
        return self.decide(self.predict_proba(X))

    def tag(self, X, top_terms: int = 3, return_details: bool = False):
        """Per sentence: themes, scores {id: p} and evidence {id: [matched cues or top terms]}.

        With ``return_details`` also the probability matrix and the rule evidence of every theme.
        """
        df, P, evidence, _ = self._scores(X)
        Yp = self.decide(P) if len(df) else np.zeros((0, len(self.classes_)), dtype=int)
        out = []
        Xl = None
        if len(df) and (self.use_rules or self.use_terms):
            RB, _, _ = self._rule_block(df)
            Xl = self._lex_matrix(self.bases_["vec"], RB, df["terms"].tolist())
        names = self._lex_feature_names()
        for i in range(len(df)):
            themes = [str(self.classes_[j]) for j in np.flatnonzero(Yp[i])]
            ev = {}
            for t in themes:
                j = int(np.flatnonzero(self.classes_ == t)[0])
                cues = list(evidence[i].get(t, []))
                if not cues and Xl is not None:
                    cues = self._top_terms(Xl[i], j, names, top_terms)
                ev[t] = cues
            out.append({
                "themes": themes,
                "scores": {str(c): round(float(P[i, j]), 4) for j, c in enumerate(self.classes_)},
                "evidence": ev,
            })
        return (out, P, evidence) if return_details else out

    def _lex_feature_names(self):
        names = []
        if self.use_rules:
            names += [f"rule:{e}" for _, e in self.rules_.specs] + [f"theme:{t}" for t in self.classes_] * 2
        if self.use_terms and self.bases_["vec"] is not None:
            names += list(self.bases_["vec"].get_feature_names_out())
        return np.array(names, dtype=object)

    def _top_terms(self, row, j, names, k):
        m = self.bases_["lex"][j]
        if not hasattr(m, "coef_"):
            return []
        row = row.tocoo()
        contrib = row.data * m.coef_[0][row.col]
        order = np.argsort(-contrib)
        out = []
        for o in order[:k]:
            if contrib[o] <= 0:
                break
            name = str(names[row.col[o]])
            if name.startswith("theme:"):
                continue
            out.append(name.removeprefix("rule:"))
        return out


_TERMS_CACHE: dict = {}
_EMB_CACHE: dict = {}


def _cached_terms(texts: tuple[str, ...]) -> list[list[str]]:
    """Content terms of the (few, fixed) prototype texts, computed once per process."""
    if texts not in _TERMS_CACHE:
        from pipeline.classify.features import terms_for_texts

        _TERMS_CACHE[texts] = terms_for_texts(list(texts))
    return _TERMS_CACHE[texts]


def _cached_embeddings(texts: tuple[str, ...], backend: str) -> np.ndarray:
    key = (texts, backend)
    if key not in _EMB_CACHE:
        from pipeline.classify.features import encode_texts

        _EMB_CACHE[key] = encode_texts(list(texts), backend)
    return _EMB_CACHE[key]


def _best_threshold(y, p) -> float:
    """Threshold maximising F1 on out-of-fold scores (middle of the best plateau)."""
    from sklearn.metrics import f1_score

    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    y = np.asarray(y) == 1
    f1s = [f1_score(y, p >= t, zero_division=0) for t in grid]
    f1s = np.array(f1s)
    best = np.flatnonzero(f1s >= f1s.max() - 1e-9)
    return float(grid[best[len(best) // 2]])
