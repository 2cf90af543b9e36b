# Reference fixtures for the estimation engine, computed with R's `survey` package.
#
# R is the oracle, never the source: this script only *calls* R survey to produce
# numbers; nothing here is ported to Python.
#
# Run from the repository root:   Rscript tests/reference/make_reference.R
# (or `make reference`). Deterministic: every random step has its own set.seed().
#
# Inputs : tests/reference/data/api*.csv (R's `api` data sets exported as CSV)
# Outputs: tests/reference/data/synthetic_repweights.csv   (built here, see section 6)
#          tests/reference/fixtures/r_estimates.csv        one row per estimate
#          tests/reference/fixtures/r_vcov.csv             covariance matrices of svyby(covmat=TRUE)
#          tests/reference/fixtures/r_degf.csv             degf() of every design
#          tests/reference/fixtures/r_poptotals.csv        population totals used for calibration
#          tests/reference/fixtures/repweights/*.csv       R's replicate weights, meta.csv, rscales.csv
#          tests/reference/fixtures/r_session.txt          sessionInfo() and survey version
#
# r_estimates.csv columns: case, design, call, by_value, variable, level, estimate, se,
# ci_low, ci_high, df, deff.  `case` is "<design>_<estimator>".  Unless stated in `call`,
# CIs are confint(x, df = degf(design)) (t with the design df) and `df` is that df.
# Exceptions: svyciprop and svyquantile report their own intervals (their df is stored);
# svyby(..., svyciprop) with no df argument uses degf() of each domain's subset design.

suppressPackageStartupMessages(library(survey))

DATA <- file.path("tests", "reference", "data")
OUT <- file.path("tests", "reference", "fixtures")
REPW <- file.path(OUT, "repweights")
dir.create(REPW, recursive = TRUE, showWarnings = FALSE)
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

apipop <- read_api("apipop")
apisrs <- read_api("apisrs")
apistrat <- read_api("apistrat")
apiclus1 <- read_api("apiclus1")
apiclus2 <- read_api("apiclus2")

# ---------------------------------------------------------------------------------------
# 1. The long table and its one helper
# ---------------------------------------------------------------------------------------
ROWS <- list()
VCOV <- list()

# record(): turn one R result into rows of r_estimates.csv.
#   x       svystat / svyratio / svyby / svyciprop / newsvyquantile / svrepstat
#   df      the df used for confint() (and stored in the `df` column)
#   factors names of factor variables, so that "sch.wideYes" becomes variable sch.wide, level Yes
#   deff    also store deff(x)
#   ci      optional 2-column matrix of intervals computed by the estimator itself
#   dfs     optional per-row df (svyby(svyciprop) on domain subsets)
#   var     variable name to store (for svyciprop / single-statistic svyby)
#   level   level to store (for svyciprop, also inside svyby)
#   covmat  also store vcov(x) in r_vcov.csv
record <- function(case, design, call, x, df, factors = character(0), deff = FALSE,
                   ci = NULL, dfs = NULL, var = NA, level = NA, covmat = FALSE) {
  if (nzchar(Sys.getenv("REF_VERBOSE"))) message(case)
  stopifnot(!case %in% vapply(ROWS, function(r) r$case[1], ""))
  split_name <- function(nm) {
    for (f in factors) if (startsWith(nm, f) && nchar(nm) > nchar(f))
      return(c(f, substring(nm, nchar(f) + 1)))
    c(nm, NA)
  }
  if (inherits(x, "newsvyquantile")) {            # svyquantile: one matrix per variable
    m <- x[[1]]
    est <- m[, 1]; ci <- m[, 2:3, drop = FALSE]; se <- m[, 4]
    nm <- rep(names(x)[1], nrow(m)); lev <- rownames(m); byv <- NA; dd <- NA
  } else if (inherits(x, "svyciprop")) {
    est <- as.numeric(coef(x)); se <- as.numeric(SE(x)); ci <- matrix(attr(x, "ci"), 1)
    nm <- var; lev <- level; byv <- NA; dd <- NA
  } else if (inherits(x, "svyby")) {
    est <- coef(x)
    keys <- names(est)
    byv <- sub(":.*$", "", keys)
    vn <- if (all(grepl(":", keys))) sub("^[^:]*:", "", keys) else rep(var, length(keys))
    sp <- vapply(vn, split_name, c("", ""))
    nm <- sp[1, ]; lev <- if (is.na(level)) sp[2, ] else rep(level, length(keys))
    if (is.na(var) && !all(grepl(":", keys))) stop("svyby with one statistic needs var=")
    se <- as.vector(as.matrix(SE(x)))
    if (is.null(ci)) ci <- confint(x, df = df)[keys, , drop = FALSE]
    dd <- if (deff) as.vector(as.matrix(survey::deff(x))) else NA
  } else {                                         # svystat, svyratio, svrepstat
    est <- coef(x)
    keys <- names(est)
    if (inherits(x, "svyratio")) keys <- paste(rownames(x$ratio), colnames(x$ratio), sep = "/")
    sp <- vapply(keys, split_name, c("", ""))
    nm <- sp[1, ]; lev <- sp[2, ]; byv <- NA
    se <- as.numeric(SE(x))
    if (is.null(ci)) ci <- confint(x, df = df)
    dd <- if (deff) as.numeric(survey::deff(x)) else NA
  }
  ROWS[[length(ROWS) + 1]] <<- data.frame(
    case = case, design = design, call = call, by_value = byv, variable = nm, level = lev,
    estimate = as.numeric(est), se = as.numeric(se), ci_low = as.numeric(ci[, 1]),
    ci_high = as.numeric(ci[, 2]), df = if (is.null(dfs)) df else dfs, deff = as.numeric(dd),
    row.names = NULL)
  if (covmat) {
    v <- vcov(x)
    VCOV[[length(VCOV) + 1]] <<- data.frame(case = case, row = rep(rownames(v), ncol(v)),
                                            col = rep(colnames(v), each = nrow(v)),
                                            value = as.vector(v))
  }
  invisible(NULL)
}

DEGF <- list()
note_degf <- function(name, d) DEGF[[name]] <<- degf(d)

# ---------------------------------------------------------------------------------------
# 2. Taylor-linearization designs
# ---------------------------------------------------------------------------------------
apistrat$prob <- 1 / apistrat$pw
n_h <- table(apistrat$stype)
apistrat$fpcfrac <- as.numeric(n_h[as.character(apistrat$stype)]) / apistrat$fpc
# lonely-PSU clustered design: apiclus2 districts sorted by dnum, grouped three at a time
# into strata (lstrat = ceiling(rank(dnum among the 40 districts) / 3)); the 40th district
# is alone in stratum 14.
apiclus2$lstrat <- ceiling(match(apiclus2$dnum, sort(unique(apiclus2$dnum))) / 3)
# BRR / Fay design: within each stype, schools ordered by snum and paired (1-2, 3-4, ...);
# each pair is a pseudo-stratum with 2 PSUs (one school each). 100 pseudo-strata.
apistrat$pstrat <- NA_character_
for (s in levels(apistrat$stype)) {
  i <- which(apistrat$stype == s)
  i <- i[order(apistrat$snum[i])]
  apistrat$pstrat[i] <- sprintf("%s%02d", s, ceiling(seq_along(i) / 2))
}

TAYLOR <- list(
  srs = list(d = svydesign(id = ~1, fpc = ~fpc, data = apisrs),
             call = "svydesign(id=~1, fpc=~fpc, data=apisrs)"),
  strat = list(d = svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpc, data = apistrat),
               call = "svydesign(id=~1, strata=~stype, weights=~pw, fpc=~fpc, data=apistrat)"),
  strat_probs = list(d = svydesign(id = ~1, strata = ~stype, probs = ~prob, data = apistrat),
                     call = "svydesign(id=~1, strata=~stype, probs=~prob, data=apistrat) # prob=1/pw"),
  strat_fpcfrac = list(d = svydesign(id = ~1, strata = ~stype, weights = ~pw, fpc = ~fpcfrac, data = apistrat),
                       call = "svydesign(id=~1, strata=~stype, weights=~pw, fpc=~fpcfrac, data=apistrat) # fpcfrac=n_h/N_h"),
  strat_nest = list(d = svydesign(id = ~dnum, strata = ~stype, weights = ~pw, nest = TRUE, data = apistrat),
                    call = "svydesign(id=~dnum, strata=~stype, weights=~pw, nest=TRUE, data=apistrat)"),
  clus1 = list(d = svydesign(id = ~dnum, weights = ~pw, fpc = ~fpc, data = apiclus1),
               call = "svydesign(id=~dnum, weights=~pw, fpc=~fpc, data=apiclus1)"),
  clus1_wr = list(d = svydesign(id = ~dnum, weights = ~pw, data = apiclus1),
                  call = "svydesign(id=~dnum, weights=~pw, data=apiclus1)"),
  clus2 = list(d = svydesign(id = ~dnum + snum, fpc = ~fpc1 + fpc2, data = apiclus2),
               call = "svydesign(id=~dnum+snum, fpc=~fpc1+fpc2, data=apiclus2)"),
  clus2_wr = list(d = svydesign(id = ~dnum + snum, weights = ~pw, data = apiclus2),
                  call = "svydesign(id=~dnum+snum, weights=~pw, data=apiclus2)")
)
for (opt in c("remove", "certainty", "adjust", "average")) {
  TAYLOR[[paste0("lonely_", opt)]] <- list(
    d = svydesign(id = ~1, weights = ~pw, strata = ~dnum, data = apiclus1), lonely = opt,
    call = sprintf("svydesign(id=~1, weights=~pw, strata=~dnum, data=apiclus1); options(survey.lonely.psu='%s')", opt))
  TAYLOR[[paste0("lonelyclus_", opt)]] <- list(
    d = svydesign(id = ~dnum, strata = ~lstrat, weights = ~pw, data = apiclus2), lonely = opt,
    call = sprintf("svydesign(id=~dnum, strata=~lstrat, weights=~pw, data=apiclus2); options(survey.lonely.psu='%s')", opt))
}

CIPROP_METHODS <- c("logit", "xlogit", "beta", "asin", "mean")

taylor_battery <- function(dn, spec) {
  d <- spec$d
  lonely <- if (is.null(spec$lonely)) "fail" else spec$lonely
  # every estimation call goes through E(), which sets the lonely-PSU option first
  E <- function(expr) { options(survey.lonely.psu = lonely); suppressWarnings(expr) }
  df <- E(degf(d))
  note_degf(dn, d)
  C <- function(txt) paste0(txt, "  # on ", spec$call)
  rec <- function(est, call, x, ...) record(paste(dn, est, sep = "_"), dn, C(call), x, df, ...)

  rec("mean_api00", "svymean(~api00, d, deff=TRUE)", E(svymean(~api00, d, deff = TRUE)), deff = TRUE)
  rec("total_enroll", "svytotal(~enroll, d, deff=TRUE, na.rm=TRUE)",
      E(svytotal(~enroll, d, deff = TRUE, na.rm = TRUE)), deff = TRUE)
  rec("mean_enroll", "svymean(~enroll, d, na.rm=TRUE)", E(svymean(~enroll, d, na.rm = TRUE)))
  rec("ratio_apistu_enroll", "svyratio(~api.stu, ~enroll, d, na.rm=TRUE)",
      E(svyratio(~api.stu, ~enroll, d, na.rm = TRUE)))
  b <- E(svyby(~api00, ~stype, d, svymean, deff = TRUE, covmat = TRUE))
  rec("by_stype_mean_api00", "svyby(~api00, ~stype, d, svymean, deff=TRUE, covmat=TRUE)", b,
      deff = TRUE, var = "api00", covmat = TRUE)
  if (!anyNA(d$variables$enroll)) {
    rec("by_stype_total_enroll", "svyby(~enroll, ~stype, d, svytotal, na.rm=TRUE, covmat=TRUE)",
        E(svyby(~enroll, ~stype, d, svytotal, na.rm = TRUE, covmat = TRUE)), var = "enroll", covmat = TRUE)
  } else {
    # survey 4.1-1: svyby(covmat=TRUE) with na.rm=TRUE fails when there are NAs; dropping the
    # NA rows as a domain is what na.rm=TRUE does, so this is the same estimator.
    rec("by_stype_total_enroll",
        "svyby(~enroll, ~stype, subset(d, !is.na(enroll)), svytotal, covmat=TRUE)  # == na.rm=TRUE",
        E(svyby(~enroll, ~stype, subset(d, !is.na(enroll)), svytotal, covmat = TRUE)),
        var = "enroll", covmat = TRUE)
  }
  rec("by_stype_awards_mean_api00", "svyby(~api00, ~stype+awards, d, svymean, covmat=TRUE)",
      E(svyby(~api00, ~stype + awards, d, svymean, covmat = TRUE)), var = "api00", covmat = TRUE)
  rec("by_stype_ratio_apistu_enroll",
      "svyby(~api.stu, by=~stype, denominator=~enroll, design=d, svyratio, na.rm=TRUE)",
      E(svyby(~api.stu, by = ~stype, denominator = ~enroll, design = d, svyratio, na.rm = TRUE)),
      var = "api.stu/enroll")
  rec("prop_schwide", "svymean(~sch.wide, d, deff=TRUE)", E(svymean(~sch.wide, d, deff = TRUE)),
      factors = "sch.wide", deff = TRUE)
  rec("by_stype_prop_schwide", "svyby(~sch.wide, ~stype, d, svymean)",
      E(svyby(~sch.wide, ~stype, d, svymean)), factors = "sch.wide")
  for (m in CIPROP_METHODS) {
    rec(paste0("ciprop_", m, "_schwide"),
        sprintf("svyciprop(~I(sch.wide=='Yes'), d, method='%s')  # df=degf(d); row = level Yes", m),
        E(svyciprop(~I(sch.wide == "Yes"), d, method = m)), var = "sch.wide", level = "Yes")
    # by domain, with the full-design df passed explicitly
    b <- E(svyby(~I(sch.wide == "Yes"), ~stype, d, svyciprop, vartype = c("se", "ci"),
                 method = m, df = df))
    rec(paste0("by_stype_ciprop_", m, "_schwide"),
        sprintf("svyby(~I(sch.wide=='Yes'), ~stype, d, svyciprop, vartype=c('se','ci'), method='%s', df=degf(d))%s", m,
                if (m == "beta") "  # NB: survey 4.1-1's beta method ignores df= (its n_eff adjustment uses nrow and degf of the domain subset)" else ""),
        b, var = "sch.wide", level = "Yes", ci = cbind(b$ci_l, b$ci_u))
    # by domain, svyciprop's own default df = degf(subset(d, stype == s)) for each domain
    b <- E(svyby(~I(sch.wide == "Yes"), ~stype, d, svyciprop, vartype = c("se", "ci"), method = m))
    dom_df <- vapply(as.character(b$stype), function(s) E(degf(subset(d, stype == s))), 0)
    rec(paste0("dom_stype_ciprop_", m, "_schwide"),
        sprintf("svyby(~I(sch.wide=='Yes'), ~stype, d, svyciprop, vartype=c('se','ci'), method='%s')  # df = degf(subset(d, stype==s)) per domain", m),
        b, var = "sch.wide", level = "Yes", ci = cbind(b$ci_l, b$ci_u), dfs = dom_df)
  }
  rec("quantile_api00",
      "svyquantile(~api00, d, c(0.25,0.5,0.75), ci=TRUE, se=TRUE)  # interval.type='mean' (Woodruff), qrule='math', df=degf(d); level = quantile",
      E(svyquantile(~api00, d, c(0.25, 0.5, 0.75), ci = TRUE, se = TRUE)))
  dH <- E(subset(d, stype == "H"))
  dfH <- E(degf(dH))
  record(paste(dn, "domH_total_enroll", sep = "_"), dn,
         C("svytotal(~enroll, subset(d, stype=='H'), na.rm=TRUE)  # df = degf(subset)"),
         E(svytotal(~enroll, dH, na.rm = TRUE)), dfH)
  record(paste(dn, "domH_mean_api00", sep = "_"), dn,
         C("svymean(~api00, subset(d, stype=='H'))  # df = degf(subset)"),
         E(svymean(~api00, dH)), dfH)
  b <- E(svyby(~api00, ~stype, d, svymean, covmat = TRUE))
  rec("contrast_EH_mean_api00",
      "svycontrast(svyby(~api00, ~stype, d, svymean, covmat=TRUE), list(`E-H`=c(E=1, H=-1)))",
      E(svycontrast(b, list(`E-H` = c(E = 1, H = -1)))))
  options(survey.lonely.psu = "fail")
}

for (dn in names(TAYLOR)) taylor_battery(dn, TAYLOR[[dn]])

# ---------------------------------------------------------------------------------------
# 3. Calibration on apiclus1
# ---------------------------------------------------------------------------------------
dclus1 <- TAYLOR$clus1$d
pop_stype <- as.data.frame(table(stype = apipop$stype))
pop_schwide <- as.data.frame(table(sch.wide = apipop$sch.wide))
stopifnot(nrow(apipop) == 6194, sum(apipop$api99) == 3914069)
pop_calrake <- c(`(Intercept)` = nrow(apipop), stypeH = sum(apipop$stype == "H"),
                 stypeM = sum(apipop$stype == "M"), api99 = sum(apipop$api99))
POPTOT <- rbind(
  data.frame(design = "clus1_cal", term = c("(Intercept)", "api99"), value = c(6194, 3914069)),
  data.frame(design = "clus1_ps", term = paste0("stype[", pop_stype$stype, "]"), value = pop_stype$Freq),
  data.frame(design = "clus1_rake", term = c(paste0("stype[", pop_stype$stype, "]"),
                                             paste0("sch.wide[", pop_schwide$sch.wide, "]")),
             value = c(pop_stype$Freq, pop_schwide$Freq)),
  data.frame(design = "clus1_rakeconv", term = c(paste0("stype[", pop_stype$stype, "]"),
                                                 paste0("sch.wide[", pop_schwide$sch.wide, "]")),
             value = c(pop_stype$Freq, pop_schwide$Freq)),
  data.frame(design = "clus1_calrake", term = c("(Intercept)", "stype[H]", "stype[M]", "api99"),
             value = as.numeric(pop_calrake)))

CAL <- list(
  clus1_cal = list(d = calibrate(dclus1, ~api99, c(6194, 3914069)),
                   call = "calibrate(dclus1, ~api99, c(6194, 3914069))"),
  clus1_ps = list(d = postStratify(dclus1, ~stype, pop_stype),
                  call = "postStratify(dclus1, ~stype, data.frame(stype, Freq=table(apipop$stype)))"),
  clus1_rake = list(d = rake(dclus1, list(~stype, ~sch.wide), list(pop_stype, pop_schwide)),
                    call = "rake(dclus1, list(~stype, ~sch.wide), list(<apipop stype counts>, <apipop sch.wide counts>))  # default control (maxit=10, epsilon=1)"),
  # the same raking iterated to convergence (R's default stops when the cell totals move by < 1)
  clus1_rakeconv = list(d = rake(dclus1, list(~stype, ~sch.wide), list(pop_stype, pop_schwide),
                                 control = list(maxit = 100, epsilon = 1e-12)),
                        call = "rake(dclus1, list(~stype, ~sch.wide), list(<apipop stype counts>, <apipop sch.wide counts>), control=list(maxit=100, epsilon=1e-12))"),
  clus1_calrake = list(d = calibrate(dclus1, ~stype + api99, pop_calrake, calfun = "raking"),
                       call = "calibrate(dclus1, ~stype+api99, c(6194, stypeH, stypeM, sum(api99)), calfun='raking')")
)
for (dn in names(CAL)) {
  d <- CAL[[dn]]$d
  df <- degf(d)
  note_degf(dn, d)
  C <- function(txt) paste0(txt, "  # on ", CAL[[dn]]$call)
  record(paste0(dn, "_mean_api00"), dn, C("svymean(~api00, d)"), svymean(~api00, d), df)
  record(paste0(dn, "_total_enroll"), dn, C("svytotal(~enroll, d)"), svytotal(~enroll, d), df)
}
record("clus1_ps_by_stype_mean_api00", "clus1_ps",
       paste0("svyby(~api00, ~stype, d, svymean)  # on ", CAL$clus1_ps$call,
              "  (covmat=TRUE errors on postStratified designs in survey 4.1-1)"),
       svyby(~api00, ~stype, CAL$clus1_ps$d, svymean), degf(CAL$clus1_ps$d), var = "api00")

# ---------------------------------------------------------------------------------------
# 4. Replicate-weight designs converted from the Taylor designs; weights exported
# ---------------------------------------------------------------------------------------
dpair <- svydesign(id = ~1, strata = ~pstrat, weights = ~pw, data = apistrat)
set.seed(20240601)
boot <- as.svrepdesign(TAYLOR$clus1_wr$d, type = "bootstrap", replicates = 50)
REP <- list(
  clus1_jk1 = list(d = as.svrepdesign(dclus1), data = "apiclus1",
                   call = "as.svrepdesign(dclus1)  # JK1, uses the fpc"),
  clus1wr_jk1 = list(d = as.svrepdesign(TAYLOR$clus1_wr$d, type = "JK1"), data = "apiclus1",
                     call = "as.svrepdesign(dclus1_wr, type='JK1')"),
  strat_jkn = list(d = as.svrepdesign(TAYLOR$strat$d, type = "JKn"), data = "apistrat",
                   call = "as.svrepdesign(dstrat, type='JKn')"),
  clus1wr_boot = list(d = boot, data = "apiclus1",
                      call = "set.seed(20240601); as.svrepdesign(dclus1_wr, type='bootstrap', replicates=50)"),
  pair_brr = list(d = as.svrepdesign(dpair, type = "BRR"), data = "apistrat",
                  call = "as.svrepdesign(svydesign(id=~1, strata=~pstrat, weights=~pw, data=apistrat), type='BRR')"),
  pair_fay = list(d = as.svrepdesign(dpair, type = "Fay", fay.rho = 0.3), data = "apistrat",
                  call = "as.svrepdesign(svydesign(id=~1, strata=~pstrat, weights=~pw, data=apistrat), type='Fay', fay.rho=0.3)")
)
# mse=TRUE variants: the same weights with design$mse <- TRUE
for (dn in c("clus1_jk1", "clus1wr_boot", "pair_fay")) {
  v <- REP[[dn]]; v$d$mse <- TRUE; v$call <- paste0(v$call, "; d$mse <- TRUE"); v$weights_of <- dn
  REP[[paste0(dn, "_mse")]] <- v
}

META <- list()
RSCALES <- list()
export_rep <- function(dn, spec, weights_file) {
  d <- spec$d
  META[[length(META) + 1]] <<- data.frame(
    design = dn, dataset = spec$data, weights_file = weights_file, type = d$type,
    rho = if (d$type == "Fay") d$rho else NA, scale = d$scale, mse = d$mse, degf = degf(d),
    nrep = ncol(weights(d, "analysis")), combined_weights = TRUE, call = spec$call)
  RSCALES[[length(RSCALES) + 1]] <<- data.frame(design = dn, replicate = seq_along(d$rscales),
                                                rscale = d$rscales)
}
for (dn in names(REP)) {
  spec <- REP[[dn]]
  d <- spec$d
  if (is.null(spec$weights_of)) {
    src <- get(spec$data)
    rw <- weights(d, "analysis")
    out <- data.frame(row = seq_len(nrow(src)), cds = src$cds, pw = weights(d, "sampling"))
    if (startsWith(dn, "pair_")) out$pstrat <- src$pstrat
    out <- cbind(out, setNames(as.data.frame(rw), paste0("rw", seq_len(ncol(rw)))))
    write_fixture(out, file.path(REPW, paste0(dn, ".csv")), text_cols = c("cds", "pstrat"))
    export_rep(dn, spec, paste0(dn, ".csv"))
  } else {
    export_rep(dn, spec, paste0(spec$weights_of, ".csv"))
  }
  df <- degf(d)
  note_degf(dn, d)
  C <- function(txt) paste0(txt, "  # on ", spec$call)
  rec <- function(est, call, x, ...) record(paste(dn, est, sep = "_"), dn, C(call), x, df, ...)
  rec("mean_api00", "svymean(~api00, d)", svymean(~api00, d))
  rec("total_enroll", "svytotal(~enroll, d, na.rm=TRUE)", svytotal(~enroll, d, na.rm = TRUE))
  if (!is.null(spec$weights_of)) next
  rec("ratio_apistu_enroll", "svyratio(~api.stu, ~enroll, d)", svyratio(~api.stu, ~enroll, d))
  rec("by_stype_mean_api00", "svyby(~api00, ~stype, d, svymean, covmat=TRUE)",
      svyby(~api00, ~stype, d, svymean, covmat = TRUE), var = "api00", covmat = TRUE)
  rec("prop_schwide", "svymean(~sch.wide, d)", svymean(~sch.wide, d), factors = "sch.wide")
  rec("median_api00",
      "svyquantile(~api00, d, 0.5, ci=TRUE)  # interval.type='mean' (Woodruff), qrule='math', df=degf(d)",
      svyquantile(~api00, d, 0.5, ci = TRUE))
}

# ---------------------------------------------------------------------------------------
# 5. Synthetic replicate-weight data set (built here, saved under data/)
# ---------------------------------------------------------------------------------------
# 2,000 persons in 78 PSUs, 2 PSUs in each of 39 variance strata. Columns:
#   id, vstrat, vpsu, region (4 levels, assigned per PSU), flag (Yes/No), y (continuous),
#   x (count, ~3% missing), w (integer base weight),
#   repw1..repw40  Fay replicate weights, rho = 0.5 (as.svrepdesign(type='Fay', fay.rho=0.5)
#                  on the 39x2 design; Hadamard matrix of order 40), combined with w;
#   sdw1..sdw40    successive-difference replicate weights: PSU k (k = 1..78 in file order)
#                  gets rows a = (k-1) %% 40 + 1 and b = k %% 40 + 1 of H = 2*hadamard(39)-1 (40 x 40, +-1),
#                  factor 1 + 2^(-3/2) * (H[a, r] - H[b, r]); combined with w, rounded to 4 dp.
set.seed(20240515)
n_psu <- 78
vpsu <- sort(sample(seq_len(n_psu), 2000, replace = TRUE, prob = runif(n_psu, 0.5, 1.5)))
stopifnot(all(table(vpsu) >= 2), length(unique(vpsu)) == n_psu)
u <- rnorm(n_psu)
psu_region <- sample(c("North", "South", "East", "West"), n_psu, replace = TRUE)
syn <- data.frame(id = seq_along(vpsu), vstrat = ceiling(vpsu / 2), vpsu = vpsu,
                  region = psu_region[vpsu])
syn$flag <- ifelse(runif(2000) < plogis(-0.4 + 0.7 * u[vpsu] + 0.3 * (syn$region == "North")), "Yes", "No")
syn$y <- round(50 + 8 * u[vpsu] + 5 * (syn$region == "North") + rnorm(2000, 0, 10), 2)
syn$x <- rpois(2000, exp(0.5 + 0.3 * u[vpsu]))
syn$x[sample(2000, 60)] <- NA
syn$w <- round(runif(2000, 50, 400) * (1 + 0.5 * (syn$vstrat %% 3)))
fay <- as.svrepdesign(svydesign(id = ~vpsu, strata = ~vstrat, weights = ~w, data = syn),
                      type = "Fay", fay.rho = 0.5, compress = FALSE)
fw <- unclass(as.matrix(weights(fay, "analysis")))
stopifnot(ncol(fw) == 40)
syn <- cbind(syn, setNames(as.data.frame(round(fw, 4)), paste0("repw", 1:40)))
H40 <- 2 * hadamard(39) - 1                     # survey's hadamard() is 0/1; make it +-1
stopifnot(all(dim(H40) == c(40, 40)), all(abs(crossprod(H40) - 40 * diag(40)) == 0))
k <- syn$vpsu
sdr_factor <- 1 + 2^(-3 / 2) * (H40[(k - 1) %% 40 + 1, ] - H40[k %% 40 + 1, ])
syn <- cbind(syn, setNames(as.data.frame(round(syn$w * sdr_factor, 4)), paste0("sdw", 1:40)))
write.csv(syn, file.path(DATA, "synthetic_repweights.csv"), row.names = FALSE, na = "")

# read the file back so that R uses exactly the numbers the Python side reads
syn <- read.csv(file.path(DATA, "synthetic_repweights.csv"))
syn$region <- factor(syn$region)
syn$flag <- factor(syn$flag)
SYN <- list(
  syn_fay = list(d = svrepdesign(data = syn, weights = ~w, repweights = "^repw[0-9]+$", type = "Fay",
                                 rho = 0.5, combined.weights = TRUE),
                 call = "svrepdesign(data=syn, weights=~w, repweights='^repw[0-9]+$', type='Fay', rho=0.5, combined.weights=TRUE)"),
  syn_sdr = list(d = svrepdesign(data = syn, weights = ~w, repweights = "^sdw[0-9]+$",
                                 type = "successive-difference", combined.weights = TRUE),
                 call = "svrepdesign(data=syn, weights=~w, repweights='^sdw[0-9]+$', type='successive-difference', combined.weights=TRUE)")
)
for (dn in names(SYN)) {
  spec <- SYN[[dn]]
  d <- spec$d
  spec$data <- "synthetic_repweights"
  export_rep(dn, spec, NA)
  df <- degf(d)
  note_degf(dn, d)
  C <- function(txt) paste0(txt, "  # on ", spec$call)
  rec <- function(est, call, x, ...) record(paste(dn, est, sep = "_"), dn, C(call), x, df, ...)
  rec("mean_y", "svymean(~y, d)", svymean(~y, d))
  rec("total_x", "svytotal(~x, d, na.rm=TRUE)", svytotal(~x, d, na.rm = TRUE))
  rec("mean_x", "svymean(~x, d, na.rm=TRUE)", svymean(~x, d, na.rm = TRUE))
  rec("ratio_x_y", "svyratio(~x, ~y, d, na.rm=TRUE)", svyratio(~x, ~y, d, na.rm = TRUE))
  rec("by_region_mean_y", "svyby(~y, ~region, d, svymean, covmat=TRUE)",
      svyby(~y, ~region, d, svymean, covmat = TRUE), var = "y", covmat = TRUE)
  rec("by_region_total_x", "svyby(~x, ~region, d, svytotal, na.rm=TRUE, covmat=TRUE)",
      svyby(~x, ~region, d, svytotal, na.rm = TRUE, covmat = TRUE), var = "x", covmat = TRUE)
  rec("prop_flag", "svymean(~flag, d)", svymean(~flag, d), factors = "flag")
  rec("by_region_prop_flag", "svyby(~flag, ~region, d, svymean)", svyby(~flag, ~region, d, svymean),
      factors = "flag")
  for (m in c("logit", "mean")) {
    rec(paste0("ciprop_", m, "_flag"),
        sprintf("svyciprop(~I(flag=='Yes'), d, method='%s')  # row = level Yes", m),
        svyciprop(~I(flag == "Yes"), d, method = m), var = "flag", level = "Yes")
  }
  rec("median_y", "svyquantile(~y, d, 0.5, ci=TRUE)  # Woodruff, qrule='math', df=degf(d)",
      svyquantile(~y, d, 0.5, ci = TRUE))
}

# ---------------------------------------------------------------------------------------
# 6. Write everything
# ---------------------------------------------------------------------------------------
est <- do.call(rbind, ROWS)
stopifnot(!any(is.na(est$estimate)))
write_fixture(est, file.path(OUT, "r_estimates.csv"),
              text_cols = c("case", "design", "call", "by_value", "variable", "level"))
write_fixture(do.call(rbind, VCOV), file.path(OUT, "r_vcov.csv"), text_cols = c("case", "row", "col"))
write_fixture(data.frame(design = names(DEGF), degf = unlist(DEGF)), file.path(OUT, "r_degf.csv"),
              text_cols = "design")
write_fixture(POPTOT, file.path(OUT, "r_poptotals.csv"), text_cols = c("design", "term"))
write_fixture(do.call(rbind, META), file.path(REPW, "meta.csv"),
              text_cols = c("design", "dataset", "weights_file", "type", "call"))
write_fixture(do.call(rbind, RSCALES), file.path(REPW, "rscales.csv"), text_cols = "design")
writeLines(c(paste("survey package version:", as.character(packageVersion("survey"))), "",
             capture.output(sessionInfo())), file.path(OUT, "r_session.txt"))
cat(sprintf("wrote %d estimate rows in %d cases, %d vcov entries\n", nrow(est),
            length(unique(est$case)), nrow(do.call(rbind, VCOV))))
