# Reference fixtures for proportional-odds survey regression (survey.ordinal), computed with
# R's `survey` (svyolr, withReplicates, svrVar) and `MASS` (polr).
#
# R is the oracle, never the source: this script only *calls* R to produce numbers; nothing
# here is ported to Python.
#
# Run from the repository root:   Rscript tests/reference/make_svyolr.R
# Deterministic (the generated fear data use set.seed).
#
# Parameterization (MASS::polr / svyolr): logit P(Y <= k | x) = zeta_k - x'beta, k = 1..K-1.
# A positive beta moves the response towards the higher categories; the zeta ("cut points",
# R's intercepts, named "1|2", "2|3", ...) are increasing.  The model matrix has no intercept.
#
# Precision.  svyolr fits with optim(BFGS) and takes the Hessian from optim's finite differences
# of the gradient (default step 1e-3).  To make the fixtures a 1e-6 oracle we pass through
# svyolr's `...` a tight optim control: reltol 1e-15, maxit 10000, ndeps 1e-5 (central
# differences of the analytic gradient: truncation error ~1e-10).  svyolr's replicate method
# does not pass `...` to its replicate fits, so for replicate designs the fixtures come from
# withReplicates() with MASS::polr refitted on every replicate weight under the same tight
# control, combined by survey's svrVar (the same computation as svyolr.svyrep.design, with
# converged replicate fits); svyolr's own (looser) replicate SEs are written too, as se_svyolr.
#
# Inputs : tests/reference/data/apistrat.csv, apiclus1.csv (R's api data as CSV).
# Outputs (tests/reference/data/): fear_ordinal.csv (the generated data, see section 2).
# Outputs (tests/reference/fixtures/ordinal/):
#   r_svyolr.csv         case, term (R's name), kind (coef | cutpoint), estimate, se, se_svyolr
#   r_svyolr_fit.csv     case, design, formula, n, degf, df_residual, deviance, loglik
#   r_svyolr_margins.csv case, type (counterfactual | domain), variable, level, category,
#                        estimate, se (replicate designs: withReplicates; Taylor: se NA)
#   r_session.txt

suppressPackageStartupMessages({
  library(survey)
  library(MASS)
})

DATA <- file.path("tests", "reference", "data")
OUT <- file.path("tests", "reference", "fixtures", "ordinal")
dir.create(OUT, recursive = TRUE, showWarnings = FALSE)
options(survey.lonely.psu = "fail", survey.replicates.mse = FALSE, stringsAsFactors = FALSE)

num <- function(x) ifelse(is.na(x), "NA", sprintf("%.15g", as.numeric(x)))
write_fixture <- function(df, path, text_cols = character(0)) {
  for (v in names(df)) if (is.numeric(df[[v]])) df[[v]] <- num(df[[v]])
  write.csv(df, path, row.names = FALSE, na = "NA", quote = which(names(df) %in% text_cols))
}
tight <- function(k) list(reltol = 1e-15, maxit = 10000, ndeps = rep(1e-5, k))

# ---------------------------------------------------------------------------------------------
# 1. api data: apicat = cut(api00, c(-Inf, 550, 650, 750, Inf)) as an ordered factor 1..4
# ---------------------------------------------------------------------------------------------
read_api <- function(name) {
  x <- read.csv(file.path(DATA, paste0(name, ".csv")), colClasses = c(cds = "character"))
  x$stype <- factor(x$stype)
  x$apicat <- cut(x$api00, c(-Inf, 550, 650, 750, Inf), labels = 1:4, ordered_result = TRUE)
  x
}
apistrat <- read_api("apistrat")
apiclus1 <- read_api("apiclus1")
dstrat <- svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpc, data = apistrat)
dclus1 <- svydesign(id = ~dnum, weights = ~pw, fpc = ~fpc, data = apiclus1)

# ---------------------------------------------------------------------------------------------
# 2. generated fear of crime item: 4 points (1 not at all worried .. 4 very worried), sex and
#    age, 8 strata x 6 PSUs x 20 respondents, PSU random effects, unequal weights, fpc = PSUs
#    in the stratum's population
# ---------------------------------------------------------------------------------------------
set.seed(20261206)
H <- 8; A <- 6; M <- 20
fear <- expand.grid(person = 1:M, psu_in = 1:A, stratum = 1:H)
fear$psu <- (fear$stratum - 1) * A + fear$psu_in
fear$npsu_pop <- 30 + 5 * fear$stratum
u <- rnorm(H * A, 0, 0.5)
fear$sex <- ifelse(runif(nrow(fear)) < 0.52, "female", "male")
fear$age <- sample(16:85, nrow(fear), replace = TRUE)
fear$w <- round((fear$npsu_pop / A) * 150 * exp(rnorm(nrow(fear), 0, 0.3)), 3)
latent <- 0.7 * (fear$sex == "female") - 0.012 * (fear$age - 50) + u[fear$psu] + rlogis(nrow(fear))
fear$fear <- as.integer(cut(latent, c(-Inf, -0.8, 0.6, 2.0, Inf), labels = FALSE))
fear <- fear[, c("stratum", "psu", "npsu_pop", "w", "sex", "age", "fear")]
write.csv(fear, file.path(DATA, "fear_ordinal.csv"), row.names = FALSE)
fear <- read.csv(file.path(DATA, "fear_ordinal.csv"))
fear$fearf <- factor(fear$fear, levels = 1:4, ordered = TRUE)
fear$sex <- factor(fear$sex)
dfear <- svydesign(id = ~psu, strata = ~stratum, weights = ~w, fpc = ~npsu_pop, data = fear)

# ---------------------------------------------------------------------------------------------
# 3. Taylor cases: svyolr with tight optim control
# ---------------------------------------------------------------------------------------------
TAYLOR <- list(
  strat_meals_ell = list(d = dstrat, f = apicat ~ meals + ell, design = "strat"),
  strat_meals_stype = list(d = dstrat, f = apicat ~ meals + stype, design = "strat"),
  clus1_meals_stype = list(d = dclus1, f = apicat ~ meals + stype, design = "clus1"),
  fear_sex_age = list(d = dfear, f = fearf ~ sex + age, design = "fear"),
  # a domain of the full design (respondents aged 30 or more): degf counts the domain's PSUs
  fear_dom_age30_sex_age = list(d = subset(dfear, age >= 30), f = fearf ~ sex + age, design = "fear_dom_age30")
)
coefs <- list(); fits <- list(); margins <- list()
for (case in names(TAYLOR)) {
  cc <- TAYLOR[[case]]
  m0 <- svyolr(cc$f, cc$d)
  k <- length(coef(m0))
  m <- svyolr(cc$f, cc$d, control = tight(k))
  stopifnot(m$convergence == 0)
  b <- coef(m); v <- vcov(m)
  pc <- length(m$coefficients)
  coefs[[case]] <- data.frame(case = case, term = names(b),
                              kind = ifelse(seq_along(b) <= pc, "coef", "cutpoint"),
                              estimate = unname(b), se = sqrt(diag(v)), se_svyolr = sqrt(diag(v)))
  fits[[case]] <- data.frame(case = case, design = cc$design, formula = deparse(cc$f),
                             n = sum(weights(cc$d) > 0), degf = degf(cc$d), df_residual = m$df.residual,
                             deviance = m$deviance, loglik = NA)
}

# ---------------------------------------------------------------------------------------------
# 4. replicate cases: withReplicates + MASS::polr (tight), svyolr's own SE as se_svyolr
# ---------------------------------------------------------------------------------------------
REP <- list(
  clus1_jk1_meals_stype = list(d = as.svrepdesign(dclus1), f = apicat ~ meals + stype, design = "clus1_jk1",
                               margin = "stype"),
  strat_jkn_meals_ell = list(d = as.svrepdesign(dstrat, type = "JKn"), f = apicat ~ meals + ell,
                             design = "strat_jkn", margin = NULL),
  fear_jkn_sex_age = list(d = as.svrepdesign(dfear, type = "JKn"), f = fearf ~ sex + age, design = "fear_jkn",
                          margin = "sex")
)
for (case in names(REP)) {
  cc <- REP[[case]]
  f <- cc$f
  dat <- model.frame(cc$d)
  dat$.w <- weights(cc$d, "sampling")
  mfull <- polr(f, data = dat, weights = .w, Hess = TRUE,
                control = list(reltol = 1e-15, maxit = 10000))
  start <- c(mfull$coefficients, mfull$zeta)
  yname <- all.vars(f)[1]
  lev <- levels(dat[[yname]])
  theta <- function(w, data) {
    data$.w <- w  # polr evaluates its weights in the data
    mm <- suppressWarnings(polr(f, data = data, weights = .w, start = start, Hess = FALSE,
                                control = list(reltol = 1e-15, maxit = 10000)))
    out <- c(mm$coefficients, mm$zeta)
    if (!is.null(cc$margin)) {
      v <- cc$margin
      levs <- levels(data[[v]])
      for (l in levs) {   # counterfactual: everyone set to level l
        nd <- data; nd[[v]] <- factor(l, levels = levs)
        p <- predict(mm, nd, type = "probs")
        out <- c(out, colSums(w * p) / sum(w))
      }
      p <- predict(mm, data, type = "probs")
      for (l in levs) {   # domain: fitted probabilities averaged within the domain
        s <- data[[v]] == l
        out <- c(out, colSums(w[s] * p[s, , drop = FALSE]) / sum(w[s]))
      }
    }
    out
  }
  wr <- withReplicates(cc$d, theta, return.replicates = FALSE)
  est <- coef(wr); se <- SE(wr)
  pc <- length(mfull$coefficients); q <- length(mfull$zeta)
  sv <- svyolr(f, cc$d)
  coefs[[case]] <- data.frame(case = case, term = c(names(mfull$coefficients), names(mfull$zeta)),
                              kind = c(rep("coef", pc), rep("cutpoint", q)),
                              estimate = unname(est[1:(pc + q)]), se = unname(se[1:(pc + q)]),
                              se_svyolr = sqrt(diag(vcov(sv))))
  # svyolr.svyrep.design refits MASS::polr(weights = w) on each replicate; polr looks the
  # weights up in the data first, so a data column named `w` (the fear data's weight) silently
  # replaces every replicate weight and the SEs come out 0: not an oracle there.
  if ("w" %in% names(dat)) coefs[[case]]$se_svyolr <- NA
  fits[[case]] <- data.frame(case = case, design = cc$design, formula = deparse(f), n = nrow(dat),
                             degf = degf(cc$d), df_residual = sv$df.residual, deviance = NA,
                             loglik = NA)
  if (!is.null(cc$margin)) {
    levs <- levels(dat[[cc$margin]])
    L <- length(levs); K <- length(lev)
    idx <- pc + q
    for (type in c("counterfactual", "domain")) {
      for (l in levs) {
        margins[[length(margins) + 1]] <- data.frame(
          case = case, type = type, variable = cc$margin, level = l, category = lev,
          estimate = unname(est[idx + 1:K]), se = unname(se[idx + 1:K]))
        idx <- idx + K
      }
    }
  }
}

# the fear JKn replicate weights, for the Python side (combined weights, with rscales and scale)
dfj <- REP$fear_jkn_sex_age$d
rw <- as.data.frame(weights(dfj, "analysis")); names(rw) <- paste0("rw", seq_len(ncol(rw)))
write_fixture(cbind(data.frame(w = weights(dfj, "sampling")), rw), file.path(OUT, "fear_jkn_repw.csv"))
write_fixture(data.frame(replicate = seq_along(dfj$rscales), rscale = dfj$rscales, scale = dfj$scale,
                         degf = degf(dfj)), file.path(OUT, "fear_jkn_rscales.csv"))

write_fixture(do.call(rbind, coefs), file.path(OUT, "r_svyolr.csv"), c("case", "term", "kind"))
write_fixture(do.call(rbind, fits), file.path(OUT, "r_svyolr_fit.csv"), c("case", "design", "formula"))
write_fixture(do.call(rbind, margins), file.path(OUT, "r_svyolr_margins.csv"),
              c("case", "type", "variable", "level", "category"))
writeLines(c(capture.output(sessionInfo()), paste("survey", packageVersion("survey")),
             paste("MASS", packageVersion("MASS"))), file.path(OUT, "r_session.txt"))
cat("done\n")
