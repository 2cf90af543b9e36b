# Reference fixtures for design-based GLMs (d.glm), computed with R's `survey` and `MASS`.
#
# R is the oracle, never the source: this script only *calls* R (svyglm, regTermTest,
# confint, svypredmeans, withReplicates, MASS::glm.nb) to produce numbers; nothing here is
# ported to Python.
#
# Run from the repository root:   Rscript tests/reference/make_glm_reference.R
# Deterministic: no random numbers are drawn anywhere.
#
# Inputs : tests/reference/data/api*.csv (R's `api` data sets exported as CSV)
# Outputs (tests/reference/fixtures/glm/):
#   r_glm.csv          one row per coefficient: case, term (R's name), estimate, se, t, df, p_value,
#                      ci_low, ci_high.  se/t/p_value are summary.svyglm's; df = model$df.residual
#                      (= degf(design) + 1 - number of coefficients); ci = confint(model) (Wald, t on
#                      df.residual: confint.svyglm's default).
#   r_glm_fit.csv      one row per case: case, design, model, family, call, n (rows used), n_dropped
#                      (rows dropped by na.omit), degf (degf of the design the model used),
#                      df_residual, dispersion (R's summary(model)$dispersion), dispersion_svyvar
#                      (summary.svyglm's definition, svyvar of (y - mu)/sqrt(V(mu)); equal to
#                      `dispersion` on Taylor designs, see section 2 for the replicate case), y_sum
#                      (sum of the response over the rows used: both sides built the same y).
#   r_glm_tests.csv    regTermTest(model, ~terms, method="Wald"): case, test, terms ("+"-joined R
#                      term labels), chisq, F, df1, df2, p_value.
#   r_glm_margins.csv  predictive margins of stype (see section 4): case, method, level,
#                      estimate, se, se_cond, se_beta, df, ci_low, ci_high.
#   r_glm_negbin.csv   MASS::glm.nb on unweighted data: case, term, estimate, se (model-based,
#                      informational); the row term == "theta" holds theta and its SE.
#   r_session.txt      sessionInfo() and package versions.
#
# Case id: "<design>_<model>".  Designs (section 1) and models (section 2) are listed below;
# outcomes are R expressions the Python side rebuilds as columns:
#   I(sch.wide == "Yes")  -> 1/0;  round(enroll/100) (R rounds half to even, as numpy);
#   offset(log(api.stu)).

suppressPackageStartupMessages({
  library(survey)
  library(MASS)
})

DATA <- file.path("tests", "reference", "data")
OUT <- file.path("tests", "reference", "fixtures", "glm")
dir.create(OUT, recursive = TRUE, showWarnings = FALSE)
options(survey.lonely.psu = "fail", survey.replicates.mse = FALSE, stringsAsFactors = FALSE)

num <- function(x) ifelse(is.na(x), "NA", sprintf("%.15g", as.numeric(x)))
write_fixture <- function(df, path, text_cols = character(0)) {
  for (v in names(df)) if (is.numeric(df[[v]])) df[[v]] <- num(df[[v]])
  write.csv(df, path, row.names = FALSE, na = "NA", quote = which(names(df) %in% text_cols))
}

read_api <- function(name) {
  x <- read.csv(file.path(DATA, paste0(name, ".csv")), colClasses = c(cds = "character"))
  for (v in intersect(c("stype", "sch.wide", "comp.imp", "both", "awards", "yr.rnd"), names(x))) {
    x[[v]][x[[v]] == ""] <- NA
    x[[v]] <- factor(x[[v]])
  }
  x
}
apisrs <- read_api("apisrs")
apistrat <- read_api("apistrat")
apiclus1 <- read_api("apiclus1")
apiclus2 <- read_api("apiclus2")

# ---------------------------------------------------------------------------------------
# 1. Designs
# ---------------------------------------------------------------------------------------
dclus1 <- svydesign(id = ~dnum, weights = ~pw, fpc = ~fpc, data = apiclus1)
DESIGNS <- list(
  clus1 = list(d = dclus1, call = "svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1)"),
  strat = list(d = svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpc, data = apistrat),
               call = "svydesign(id=~1, strata=~stype, weights=~pw, fpc=~fpc, data=apistrat)"),
  # the same replicate weights as fixtures/repweights/clus1_jk1.csv (make_reference.R)
  clus1_jk1 = list(d = as.svrepdesign(dclus1),
                   call = "as.svrepdesign(dclus1)  # JK1 with the fpc; weights = fixtures/repweights/clus1_jk1.csv"),
  # a domain on the full design (R's subset keeps the design: zero-score PSUs in the variance)
  clus1_domNotH = list(d = subset(dclus1, stype != "H"),
                       call = "subset(dclus1, stype != 'H')  # domain on the full design"),
  # a domain that leaves out whole PSUs (12 of the 15 districts have an H or M school): degf 11
  clus1_domNotE = list(d = subset(dclus1, stype != "E"),
                       call = "subset(dclus1, stype != 'E')  # domain on the full design; degf 11"),
  clus2 = list(d = svydesign(id = ~dnum + snum, fpc = ~fpc1 + fpc2, data = apiclus2),
               call = "svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2)")
)

# ---------------------------------------------------------------------------------------
# 2. Models and the (design, model) cases
# ---------------------------------------------------------------------------------------
MODELS <- list(
  logit_ell_meals = list(f = I(sch.wide == "Yes") ~ ell + meals, family = "quasibinomial"),
  logit_ell_stype = list(f = I(sch.wide == "Yes") ~ ell + stype, family = "quasibinomial"),
  # avg.ed has 26 missing values in apiclus1: na.omit drops them (R: design[-nas, ])
  logit_ell_avged = list(f = I(sch.wide == "Yes") ~ ell + avg.ed, family = "quasibinomial"),
  pois_stype_meals = list(f = round(enroll / 100) ~ stype + meals, family = "quasipoisson"),
  pois_stype_meals_offset = list(f = round(enroll / 100) ~ stype + meals + offset(log(api.stu)),
                                 family = "quasipoisson"),
  pois_meals = list(f = round(enroll / 100) ~ meals, family = "quasipoisson"),
  pois_meals_offset = list(f = round(enroll / 100) ~ meals + offset(log(api.stu)), family = "quasipoisson")
)
MAIN <- c("logit_ell_meals", "logit_ell_stype", "pois_stype_meals", "pois_stype_meals_offset")
PLAN <- list(
  clus1 = c(MAIN, "logit_ell_avged"),
  strat = MAIN,
  clus1_jk1 = MAIN,
  # logit_ell_stype on the domain: stype level H has no cases; glm's model.frame drops the
  # unused level (drop.unused.levels=TRUE), so R's model has no stypeH coefficient.
  clus1_domNotH = c("logit_ell_meals", "logit_ell_stype", "pois_meals", "pois_meals_offset"),
  clus1_domNotE = c("logit_ell_meals", "pois_meals"),
  # apiclus2 has 6 missing enroll (districts 228 and 452, every sampled school of both): the
  # Poisson models drop them, and with them 2 PSUs: degf(design[-nas, ]) = 37, df.residual 34
  clus2 = MAIN
)
# regTermTest(model, ~terms): which tests for which model
TESTS <- list(
  logit_ell_meals = list(meals = ~meals, ell_meals = ~ell + meals),
  logit_ell_stype = list(stype = ~stype, ell_stype = ~ell + stype),
  logit_ell_avged = list(avged = ~avg.ed),
  pois_stype_meals = list(stype = ~stype),
  pois_stype_meals_offset = list(stype = ~stype, stype_meals = ~stype + meals),
  pois_meals = list(meals = ~meals),
  pois_meals_offset = list(meals = ~meals)
)

fam <- function(name) get(name, mode = "function")()
# glm's default convergence (epsilon = 1e-8 on the relative deviance change) leaves
# coefficients a few 1e-7 from the optimum and SEs / p-values up to ~1e-4 relative away, too
# coarse for 1e-6 comparisons: every fit here uses epsilon = 1e-12 (and checks convergence).
# Even then glm.fit returns the working weights (and the QR behind svyglm's A^-1) of the
# iteration *before* the last coefficient update, which moves the sandwich SEs by ~1e-7
# relative; so each model is fitted twice, the second time with start = the converged
# coefficients, which makes the working weights those at the optimum (fit0 = the first fit).
CTRL <- glm.control(epsilon = 1e-12, maxit = 100)
fit0 <- function(d, m) {
  g <- eval(bquote(svyglm(.(m$f), design = d, family = fam(.(m$family)), control = .(CTRL))))
  stopifnot(g$converged)
  g
}
fit <- function(d, m) {
  b0 <- coef(fit0(d, m))
  g <- eval(bquote(svyglm(.(m$f), design = d, family = fam(.(m$family)), control = .(CTRL),
                          start = .(unname(b0)))))
  stopifnot(g$converged, max(abs(coef(g) - b0)) <= 1e-10 * max(abs(b0)))
  g
}

COEF <- list(); FIT <- list(); TST <- list(); MODS <- list()
for (dn in names(PLAN)) {
  d <- DESIGNS[[dn]]$d
  for (mn in PLAN[[dn]]) {
    case <- paste(dn, mn, sep = "_")
    m <- fit(d, MODELS[[mn]])
    MODS[[case]] <- m
    s <- summary(m)
    ct <- coef(s)
    stopifnot(!anyNA(coef(m)), ncol(ct) == 4)
    ci <- confint(m)
    COEF[[case]] <- data.frame(case = case, term = rownames(ct), estimate = ct[, 1], se = ct[, 2],
                               t = ct[, 3], df = m$df.residual, p_value = ct[, 4],
                               ci_low = ci[rownames(ct), 1], ci_high = ci[rownames(ct), 2],
                               row.names = NULL)
    nas <- m$na.action
    # summary.svyglm's dispersion is svyvar(Pearson residuals, design); its Pearson residual is
    # (y - mu) / sqrt(V(mu)) (the sampling weights cancel).  summary.svrepglm (survey 4.1-1)
    # instead takes sum(pw * r^2) / sum(pw) with residuals.svrepglm dividing by
    # sqrt(pw / sum(pw)) where svyglm's prior weights are pw / mean(pw): n times an uncentred
    # mean square.  Both are stored: `dispersion` (R's summary) and `dispersion_svyvar` (the
    # summary.svyglm definition, svyvar of (y - mu) / sqrt(V(mu)) on the model's design).
    pres <- (m$y - fitted(m)) / sqrt(m$family$variance(fitted(m)))
    disp_svyvar <- as.numeric(coef(svyvar(pres, m$survey.design)))[1]
    disp_r <- as.numeric(s$dispersion)[1]
    # With dropped rows and unequal weights, svyglm rescales the prior weights by their mean over
    # all rows before na.omit while residuals.svyglm uses the mean over the rows kept, so R's
    # summary is off by that ratio (clus2 Poisson models: mean(pw kept) / mean(pw all)).
    if (!inherits(m, "svrepglm")) {
      w_all <- weights(DESIGNS[[dn]]$d, "sampling")
      w_kept <- weights(m$survey.design, "sampling")
      ratio <- if (length(nas)) mean(w_kept) / mean(w_all[w_all > 0]) else 1
      if (abs(disp_r - disp_svyvar * ratio) > 1e-10 * disp_r) stop(case, ": ", disp_r, " vs ", disp_svyvar)
    }
    FIT[[case]] <- data.frame(
      case = case, design = dn, model = mn, family = MODELS[[mn]]$family,
      call = sprintf("svyglm(%s, design=d, family=%s(), control=glm.control(epsilon=1e-12, maxit=100), start=<converged coef>)  # d = %s", deparse1(MODELS[[mn]]$f),
                     MODELS[[mn]]$family, DESIGNS[[dn]]$call),
      n = length(m$y), n_dropped = length(nas), degf = degf(m$survey.design),
      df_residual = m$df.residual, dispersion = disp_r, dispersion_svyvar = disp_svyvar,
      y_sum = sum(m$y))
    for (tn in names(TESTS[[mn]])) {
      tf <- TESTS[[mn]][[tn]]
      labs <- attr(terms(tf), "term.labels")
      if (!all(labs %in% attr(terms(m), "term.labels"))) next
      r <- regTermTest(m, tf, method = "Wald")
      TST[[length(TST) + 1]] <- data.frame(
        case = case, test = tn, terms = paste(labs, collapse = "+"),
        chisq = as.numeric(r$Ftest) * r$df, F = as.numeric(r$Ftest), df1 = r$df, df2 = r$ddf,
        p_value = as.numeric(r$p))
    }
  }
}

# ---------------------------------------------------------------------------------------
# 3. Checks against the published vignette values (reference.csv line 9)
# ---------------------------------------------------------------------------------------
pub <- COEF[["clus1_logit_ell_meals"]]
stopifnot(all(abs(pub$estimate - c(1.899557, 0.039925, -0.019115)) <= 5e-7),
          all(abs(pub$se - c(0.509915, 0.012443, 0.008825)) <= 5e-7),
          all(abs(pub$p_value - c(0.00290, 0.00751, 0.05117)) <= 5e-6),
          all(pub$df == 12))

# ---------------------------------------------------------------------------------------
# 4. Predictive margins of stype
# ---------------------------------------------------------------------------------------
# method "svypredmeans" (Taylor designs): svypredmeans(adjust, ~stype), adjust = svyglm without
#   stype.  It refits adjust + stype (the engine's model "<rhs of adjust> + C(stype)"), sets every
#   row's stype to each level, predicts the response and takes the design-weighted mean:
#   estimate = svymean(fits);  se^2 = se_cond^2 + se_beta^2 with
#   se_cond = SE of svymean(fits, design) (fits as data) and
#   se_beta^2 = g' vcov(model) g, g = weighted mean of mu.eta(eta) * x (delta method); no cross term
#   (Graubard & Korn 1999).
# svypredmeans fails on replicate designs in survey 4.1-1 (its update(design) -> subset error), so
# for clus1_jk1 two replicate versions are computed with R's own calls:
#   "gk_replicate": the same formula as svypredmeans, with the replicate svymean variance of the
#       fits and the replicate vcov(model);
#   "replicate_refit": withReplicates(): for each replicate weight, refit the glm and recompute the
#       weighted mean of the counterfactual predictions; variance by svrVar (se_cond/se_beta NA).
# For the Taylor designs, method "linearized" is a diagnostic: the same estimate with a full
#   linearization (the covariance of the mean of the fits and beta-hat kept; see the code).
# Intervals: estimate -/+ qt(0.975, degf(design)) * se (as confint(x, df = degf(design))), df stored.
MARGIN_MODELS <- list(
  logit_ell_meals = list(f = I(sch.wide == "Yes") ~ ell + meals, family = "quasibinomial"),
  pois_meals = list(f = round(enroll / 100) ~ meals, family = "quasipoisson")
)
MRG <- list()
add_margin <- function(case, method, est, se, se_cond, se_beta, df) {
  q <- qt(0.975, df)
  MRG[[length(MRG) + 1]] <<- data.frame(
    case = case, method = method, level = names(est), estimate = as.numeric(est),
    se = as.numeric(se), se_cond = as.numeric(se_cond), se_beta = as.numeric(se_beta), df = df,
    ci_low = as.numeric(est) - q * as.numeric(se), ci_high = as.numeric(est) + q * as.numeric(se),
    row.names = NULL)
}
for (dn in c("clus1", "strat", "clus2")) {
  d <- DESIGNS[[dn]]$d
  for (mn in names(MARGIN_MODELS)) {
    adj <- fit0(d, MARGIN_MODELS[[mn]])  # svypredmeans refits with update(): no start= (see fit0)
    pm <- svypredmeans(adj, ~stype)
    parts <- attr(vcov(pm), "parts")
    ci <- confint(pm, df = degf(d))
    est <- coef(pm)
    stopifnot(all(abs(ci[, 1] - (est - qt(0.975, degf(d)) * SE(pm))) < 1e-9 * abs(est)))
    add_margin(paste(dn, mn, sep = "_"), "svypredmeans", est, SE(pm), sqrt(diag(parts[[2]])),
               sqrt(diag(parts[[1]])), degf(d))
    # "linearized" (a diagnostic, not svypredmeans): the same estimate with the covariance
    # between the mean of the fits and beta-hat kept.  Per row i and level l,
    #   z_il = (mu_il - m_l) / W + infl_i' g_l / w_i,
    # infl = estfun %*% naive.cov from svyglm's own pieces (its svy.varcoef is the design
    # variance of the totals of infl), and the variance is that of svytotal(z, d).
    model <- fit(d, list(f = update(MARGIN_MODELS[[mn]]$f, . ~ . + stype), family = MARGIN_MODELS[[mn]]$family))
    dd <- model$survey.design  # rows used by the fit (design[-nas, ] when rows are dropped)
    estfun <- model.matrix(model) * resid(model, "working") * model$weights
    infl <- estfun %*% model$naive.cov
    stopifnot(max(abs(svyrecvar(infl, dd$cluster, dd$strata, dd$fpc) - vcov(model))) < 1e-12 * max(abs(vcov(model))))
    w <- weights(dd, "sampling")
    levs <- names(est)
    z <- sapply(levs, function(l) {
      nd <- model.frame(dd); nd$stype <- factor(l, levels = levels(apiclus1$stype))
      mu <- predict(model, newdata = nd, type = "response")
      eta <- predict(model, newdata = nd, type = "link")
      mmx <- model.matrix(terms(model), model.frame(terms(model), nd))
      g <- colSums(w * model$family$mu.eta(as.numeric(eta)) * mmx) / sum(w)
      (as.numeric(mu) - sum(w * mu) / sum(w)) / sum(w) + as.numeric(infl %*% g) / w
    })
    lin <- svytotal(z, dd)
    add_margin(paste(dn, mn, sep = "_"), "linearized", est, SE(lin), NA, NA, degf(d))
  }
}
drep <- DESIGNS$clus1_jk1$d
for (mn in names(MARGIN_MODELS)) {
  mm <- MARGIN_MODELS[[mn]]
  f_full <- update(mm$f, . ~ . + stype)
  model <- fit(drep, list(f = f_full, family = mm$family))
  levs <- levels(apiclus1$stype)
  newdata <- function(l) { nd <- apiclus1; nd$stype <- factor(l, levels = levs); nd }
  fits <- sapply(levs, function(l) predict(model, newdata = newdata(l), type = "response", se.fit = FALSE))
  fits <- matrix(as.numeric(fits), ncol = length(levs), dimnames = list(NULL, levs))
  cond <- svymean(fits, drep)
  w <- weights(drep, "sampling")
  g <- sapply(levs, function(l) {
    nd <- newdata(l)
    eta <- predict(model, newdata = nd, type = "link", se.fit = FALSE)
    mmx <- model.matrix(terms(model), model.frame(terms(model), nd))
    colSums(w * model$family$mu.eta(as.numeric(eta)) * mmx) / sum(w)
  })
  addvar <- t(g) %*% vcov(model) %*% g
  se_cond <- sqrt(diag(attr(cond, "var")))
  se_beta <- sqrt(diag(addvar))
  add_margin(paste("clus1_jk1", mn, sep = "_"), "gk_replicate", coef(cond),
             sqrt(se_cond^2 + se_beta^2), se_cond, se_beta, degf(drep))
  fam_obj <- fam(mm$family)
  theta <- function(wts, data) {
    data$.w <- wts / mean(wts)
    gf <- suppressWarnings(glm(f_full, data = data, weights = .w, family = fam_obj, control = CTRL))
    sapply(levs, function(l) {
      nd <- data; nd$stype <- factor(l, levels = levs)
      sum(wts * predict(gf, newdata = nd, type = "response")) / sum(wts)
    })
  }
  wr <- withReplicates(drep, theta)
  stopifnot(all(abs(coef(wr) - coef(cond)) < 1e-8 * abs(coef(cond))))
  add_margin(paste("clus1_jk1", mn, sep = "_"), "replicate_refit", setNames(coef(wr), levs), SE(wr),
             NA, NA, degf(drep))
}

# ---------------------------------------------------------------------------------------
# 5. Negative binomial (MASS::glm.nb) on unweighted data
# ---------------------------------------------------------------------------------------
# Tight convergence so that the point estimates are good to far better than 1e-5; theta is
# checked against MASS::theta.ml at the final fitted values (eps = 1e-9) to 1e-8 relative.
NB <- list(
  nb_srs_meals_stype = list(f = round(enroll / 100) ~ meals + stype, data = "apisrs"),
  # (round(enroll/100) with offset(log(api.stu)) is under-dispersed: theta -> Inf, so not used)
  nb_clus1_emer_ell_stype_offset = list(f = emer ~ ell + stype + offset(log(enroll)), data = "apiclus1")
)
NBR <- list()
NBFIT <- list()
for (cn in names(NB)) {
  spec <- NB[[cn]]
  dat <- get(spec$data)
  m <- eval(bquote(glm.nb(.(spec$f), data = dat, control = glm.control(epsilon = 1e-10, maxit = 100))))
  th <- theta.ml(m$y, fitted(m), length(m$y), limit = 100, eps = 1e-9)
  stopifnot(abs(th - m$theta) <= 1e-8 * m$theta)
  ct <- coef(summary(m))
  NBR[[cn]] <- rbind(
    data.frame(case = cn, term = rownames(ct), estimate = ct[, 1], se = ct[, 2], row.names = NULL),
    data.frame(case = cn, term = "theta", estimate = m$theta, se = m$SE.theta))
  NBFIT[[cn]] <- data.frame(case = cn, data = spec$data,
                            call = sprintf("MASS::glm.nb(%s, data=%s, control=glm.control(epsilon=1e-10, maxit=100))",
                                           deparse1(spec$f), spec$data),
                            n = length(m$y), twologlik = m$twologlik)
}

# ---------------------------------------------------------------------------------------
# 6. Write
# ---------------------------------------------------------------------------------------
write_fixture(do.call(rbind, COEF), file.path(OUT, "r_glm.csv"), text_cols = c("case", "term"))
write_fixture(do.call(rbind, FIT), file.path(OUT, "r_glm_fit.csv"),
              text_cols = c("case", "design", "model", "family", "call"))
write_fixture(do.call(rbind, TST), file.path(OUT, "r_glm_tests.csv"), text_cols = c("case", "test", "terms"))
write_fixture(do.call(rbind, MRG), file.path(OUT, "r_glm_margins.csv"), text_cols = c("case", "method", "level"))
write_fixture(do.call(rbind, NBR), file.path(OUT, "r_glm_negbin.csv"), text_cols = c("case", "term"))
write_fixture(do.call(rbind, NBFIT), file.path(OUT, "r_glm_negbin_fit.csv"), text_cols = c("case", "data", "call"))
writeLines(c(paste("survey package version:", as.character(packageVersion("survey"))),
             paste("MASS package version:", as.character(packageVersion("MASS"))), "",
             capture.output(sessionInfo())), file.path(OUT, "r_session.txt"))
cat(sprintf("wrote %d coefficient rows in %d cases, %d tests, %d margin rows, %d negbin rows\n",
            nrow(do.call(rbind, COEF)), length(COEF), length(TST), nrow(do.call(rbind, MRG)),
            nrow(do.call(rbind, NBR))))
