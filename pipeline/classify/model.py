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
``group`` (speaker-turn id; rows in document order), ``embedding`` (vector) and ``domain``
(the council the row comes from, :func:`pipeline.labels.council_of`); missing terms/embeddings
are computed with the parse/embed libraries.

Councils (``domain_adaptation``): with labelled rows of two or more councils, each base model sees
every feature twice -- a copy shared by all councils and a copy in its own council's block (Daume
III 2007, "Frustratingly easy domain adaptation"), so one council's labelling habits go to its own
weights instead of bending the shared ones. A row of a council seen in training is scored with
shared + its council's weights; a row of any other council (or without ``domain``) with the shared
weights only. Off, or with one council: exactly the model without councils (and with
``context_gate=False`` too: the model before both, bit for bit).
``Y`` is a 0/1 matrix [n, n_themes] in taxonomy order (``classes_``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

# _identity: the TF-IDF analyzer pickled with models saved before the split (keep importable here)
from pipeline.classify.bases import BaseModelsMixin, _identity  # noqa: F401
from pipeline.classify.definitions import DefinitionsMixin
from pipeline.classify.stacking import StackingMixin, _best_threshold  # noqa: F401
from pipeline.settings import default

log = logging.getLogger("policy_topics.classify")


def _near(hit: np.ndarray, groups: np.ndarray, w: int) -> np.ndarray:
    """Per row: ``hit`` at the row or within ``w`` rows either side in the same group (turn)."""
    out = hit.copy()
    for _, idx in pd.Series(np.arange(len(hit))).groupby(groups, sort=False):
        idx = idx.to_numpy()
        h = hit[idx]
        for k in range(1, w + 1):
            out[idx[k:]] |= h[:-k]
            out[idx[:-k]] |= h[k:]
    return out


class ThemeClassifier(BaseModelsMixin, DefinitionsMixin, StackingMixin, BaseEstimator):
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
        embedding_backend: str = default("embed.backend"),
        use_definitions: bool = True,
        self_training: bool = True,
        pseudo_min_proba: float = 0.8,
        domain_adaptation: bool = True,
        domain_min_rows: int = default("classify.domain_min_rows"),
        context_gate: bool = True,
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
        self.domain_adaptation = domain_adaptation
        self.domain_min_rows = domain_min_rows
        self.context_gate = context_gate
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
        if "domain" in X.columns:
            df["domain"] = X["domain"].fillna("").astype(str).to_numpy()
        if self.use_embeddings:
            if "embedding" in X.columns:
                df["embedding"] = list(np.vstack(X["embedding"].to_numpy()).astype(np.float32)) if len(X) else []
            else:
                df["embedding"] = list(encode_texts(df["text"].tolist(), self.embedding_backend)) if len(df) else []
        return df

    # ------------------------------------------------------------ fit
    def fit(self, X, Y, sample_weight=None):
        """Fit on labelled rows of ``Y`` (0/1); rows that are all -1 are unlabelled text
        (scikit-learn's semi-supervised convention): with ``self_training`` their confident
        predictions become extra training rows for the base models (the new meeting's own
        wording), otherwise they are ignored.

        ``sample_weight`` (one non-negative weight per row of ``X``; scikit-learn convention)
        weights each row in the base models, the calibrator, the C choice (weighted average
        precision) and the threshold choice (weighted F1); a pseudo-labelled row keeps its
        row's weight, the taxonomy's prototypes weigh 1. ``train`` uses it to weigh label records
        of another council against the corpus's labels (``classify.label_record_weight``).

        Base models' C on inner grouped folds (:mod:`~pipeline.classify.bases`), calibrator and
        thresholds on their out-of-fold scores (:mod:`~pipeline.classify.stacking`), the
        taxonomy's prototypes as extra rows (:mod:`~pipeline.classify.definitions`)."""
        tax = self._load_taxonomy()
        self._setup_rules(tax)
        df, Y, df_u, w, w_u = self._split_labelled(self.prepare(X), Y, sample_weight)
        self.domains_ = self._training_domains(df)
        d = self._domain_index(df)
        proto = self._definition_rows(tax)
        terms = df["terms"].tolist()
        groups = df["group"].to_numpy()
        lengths = df["text"].str.len().to_numpy()
        RB, Hb, _ = self._rule_block(df)
        E = np.vstack(df["embedding"].to_numpy()) if self.use_embeddings and len(df) else None
        folds = self._inner_folds(groups)
        S_lex, S_emb = self._tune_bases(terms, RB, E, Y, folds, proto, w, d)
        feats = self._meta_features(S_lex, S_emb, Hb, groups, lengths, self._definition_similarity(E))
        self._fit_calibrator(feats, Y, folds, self.allowed(df), w)
        # ---- final base models on all the data (+ the definition prototypes)
        full = self._with_rows((terms, RB, E, Y, w, d), proto)
        self.bases_ = self._fit_bases(*full, self.C_lex_, self.C_emb_)
        self._self_train(df_u, full, E is not None, w_u)
        return self

    def _training_domains(self, df) -> list[str]:
        """The councils that get a block of their own: those of the labelled rows with at least
        ``domain_min_rows`` rows, when ``domain_adaptation`` is on and the labelled rows come from two
        or more councils (one council: no blocks, the fit without councils). A council below the
        minimum trains and is scored by the shared copy only, like a council never seen."""
        if not self.domain_adaptation or "domain" not in df.columns:
            return []
        counts = df["domain"].astype(str).value_counts()
        if len(counts) < 2:
            return []
        return sorted(c for c, k in counts.items() if k >= int(self.domain_min_rows))

    def _split_labelled(self, df, Y, sample_weight=None):
        """(labelled rows, their Y, unlabelled rows, labelled rows' weights, unlabelled rows'
        weights) after checking Y's and the weights' shape and values (weights None: all 1)."""
        L = len(self.classes_)
        Y = np.asarray(Y, dtype=int)
        if Y.ndim != 2 or Y.shape != (len(df), L):
            raise ValueError(f"Y must be [n_samples, {L}] (one column per taxonomy theme), got {Y.shape}")
        unl = (Y < 0).all(1)
        if ((Y < 0).any(1) & ~unl).any() or (Y > 1).any():
            raise ValueError("Y rows must be 0/1, or all -1 for an unlabelled row")
        w = w_u = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=float)
            if sw.shape != (len(df),) or not np.isfinite(sw).all() or (sw < 0).any():
                raise ValueError(f"sample_weight must be {len(df)} finite non-negative numbers, one per row")
            w, w_u = sw[~unl], sw[unl]
        df_u = df[unl].reset_index(drop=True)
        df, Y = df[~unl].reset_index(drop=True), Y[~unl]
        if len(df) == 0:
            raise ValueError("no labelled rows")
        return df, Y, df_u, w, w_u

    def _self_train(self, df_u, full, with_embeddings: bool, w_u=None) -> None:
        """Self-training on the unlabelled text (e.g. a new council's meetings): its confident
        theme predictions become extra rows for the base models, so words that only the new
        meeting uses start to count; calibrator and thresholds stay as fitted."""
        self.n_pseudo_ = {}
        if not (self.self_training and len(df_u)):
            return
        _, Pu, _, _ = self._scores_prepared(df_u)
        Yu = self.decide(Pu) * (Pu >= float(self.pseudo_min_proba))
        keep = Yu.any(1)
        if keep.any():
            RBu, _, _ = self._rule_block(df_u)
            Eu = np.vstack(df_u["embedding"].to_numpy())[keep] if with_embeddings else None
            du = self._domain_index(df_u)
            extra = ([df_u["terms"].iloc[i] for i in np.flatnonzero(keep)], RBu[keep], Eu, Yu[keep],
                     None if w_u is None else w_u[keep], None if du is None else du[keep])
            self.bases_ = self._fit_bases(*self._with_rows(full, extra), self.C_lex_, self.C_emb_)
            self.n_pseudo_ = {str(t): int(Yu[:, j].sum()) for j, t in enumerate(self.classes_) if Yu[:, j].any()}

    # ------------------------------------------------------------ predict
    def _scores(self, X):
        return self._scores_prepared(self.prepare(X))

    def _scores_prepared(self, df):
        if len(df) == 0:
            L = len(self.classes_)
            return df, np.zeros((0, L)), [], np.zeros((0, L))
        RB, Hb, evidence = self._rule_block(df)
        E = np.vstack(df["embedding"].to_numpy()) if self.use_embeddings else None
        S_lex, S_emb = self._base_scores(self.bases_, df["terms"].tolist(), RB, E, self._domain_index(df))
        feats = self._meta_features(S_lex, S_emb, Hb, df["group"].to_numpy(), df["text"].str.len().to_numpy(),
                                    self._definition_similarity(E))
        P = self._calibrated(feats, len(df)) * self.allowed(df)
        return df, P, evidence, S_lex

    def allowed(self, df) -> np.ndarray:
        """[n, L] mask: False where a theme needs the taxonomy's scope and neither the sentence
        nor a neighbour in its turn (within the theme's scope window) matches the scope rule, nor
        the sentence itself the ``scope_in_sentence`` rule (which only widens the gate: no
        ``scope``, no gate)."""
        from pipeline.classify.rules import Doc, compile_rule

        n, L = len(df), len(self.classes_)
        if not getattr(self, "scope_rule_", None):
            return np.ones((n, L), dtype=bool)
        docs = [Doc.make(t, terms) for t, terms in zip(df["text"], df["terms"])]

        def match(expr):
            node = compile_rule(expr)
            return np.array([node.eval(d)[0] for d in docs], dtype=bool)

        hit = match(self.scope_rule_)
        # models saved before scope_in_sentence: none
        own = match(rule) if (rule := getattr(self, "scope_in_sentence_rule_", None)) else np.zeros(n, dtype=bool)
        # one window per theme (models saved before per-theme windows: the taxonomy's for all)
        windows = getattr(self, "scope_windows_", np.full(L, self.scope_window_, dtype=int))
        groups = df["group"].to_numpy()
        out = np.ones((n, L), dtype=bool)
        for w in np.unique(windows):
            inscope = _near(hit, groups, int(w)) | own
            cols = windows == w
            out[:, cols] = inscope[:, None] | ~self.requires_scope_[None, cols]
        return out

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
        d = self._domain_index(df)
        for i in range(len(df)):
            themes = [str(self.classes_[j]) for j in np.flatnonzero(Yp[i])]
            ev = {}
            for t in themes:
                j = int(np.flatnonzero(self.classes_ == t)[0])
                cues = list(evidence[i].get(t, []))
                if not cues and Xl is not None:
                    cues = self._top_terms(Xl[i], j, names, top_terms, -1 if d is None else int(d[i]))
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

    def _top_terms(self, row, j, names, k, d: int = -1):
        m = self.bases_["lex"][j]
        if not hasattr(m, "coef_"):
            return []
        row = row.tocoo()
        coef = m.coef_[0]
        F = row.shape[1]
        # with council blocks: the row's weights are the shared copy plus its council's (if seen)
        w = coef[:F] + (coef[F * (d + 1):F * (d + 2)] if d >= 0 else 0.0)
        contrib = row.data * w[row.col]
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

