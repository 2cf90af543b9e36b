# Oracle for survey.sae.fay_herriot: R metafor (random-effects meta-regression = Fay-Herriot).
#   Rscript tests/reference/make_fay_herriot.R      (from the project root; needs r-cran-metafor)
# Writes tests/reference/data/fay_herriot_metafor.csv: one row per dataset x method x area with the
# inputs (y = direct estimate, se = its standard error, x1, x2 covariates; y missing = area without
# a sample), metafor's tau2 (= sigma2_u), beta and their SEs, the BLUP of each sampled area
# (blup(): pred and se), and for every area the fitted x'beta with its SE and the 95% prediction
# interval from predict() (whose half-width is 1.96 sqrt(se^2 + tau2)).
# Datasets: "fh30" (30 areas, 2 covariates, 4 areas without a sample) and "zero" (20 areas whose
# direct estimates vary less than their sampling error: tau2 truncated at 0).
suppressPackageStartupMessages(library(metafor))
set.seed(20261206)
make <- function(name, m, sigma2u, psi_scale, miss) {
  x1 <- round(runif(m, 0, 10), 3)
  x2 <- round(rnorm(m, 5, 2), 3)
  psi <- round(psi_scale * runif(m, 0.3, 3), 4)
  theta <- 2 + 0.5 * x1 - 0.3 * x2 + rnorm(m, 0, sqrt(sigma2u))
  y <- round(theta + rnorm(m, 0, sqrt(psi)), 4)
  y[miss] <- NA
  data.frame(dataset = name, area = sprintf("A%02d", seq_len(m)), y = y, se = sqrt(psi), x1 = x1, x2 = x2)
}
sets <- list(make("fh30", 30, 1.5, 1.0, c(3, 11, 19, 27)),
             make("zero", 20, 0.0, 2.0, integer(0)))
ctrl <- list(threshold = 1e-13, maxiter = 5000, stepadj = 1)
out <- list()
for (d in sets) {
  s <- d[!is.na(d$y), ]
  for (meth in c("REML", "ML")) {
    fit <- rma(yi = s$y, vi = s$se^2, mods = ~ x1 + x2, data = s, method = meth, control = ctrl)
    b <- blup(fit)
    p <- predict(fit, newmods = cbind(d$x1, d$x2))
    r <- data.frame(d, method = meth, tau2 = fit$tau2, se_tau2 = fit$se.tau2,
                    b0 = fit$beta[1], b1 = fit$beta[2], b2 = fit$beta[3],
                    se_b0 = fit$se[1], se_b1 = fit$se[2], se_b2 = fit$se[3],
                    blup = NA_real_, blup_se = NA_real_,
                    fitted = p$pred, fitted_se = p$se, pi_ub = p$pi.ub)
    r$blup[!is.na(d$y)] <- b$pred
    r$blup_se[!is.na(d$y)] <- b$se
    out[[length(out) + 1]] <- r
  }
}
res <- do.call(rbind, out)
write.csv(res, "tests/reference/data/fay_herriot_metafor.csv", row.names = FALSE, na = "")
cat(sprintf("wrote %d rows; metafor %s\n", nrow(res), as.character(packageVersion("metafor"))))
